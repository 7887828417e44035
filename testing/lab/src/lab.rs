//! Building the LAN and acting on it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::netns::{Netns, ip, unique_prefix};

#[derive(Debug, Clone, Copy)]
pub struct LabSpec {
    pub hosts: usize,
    /// Give hosts and client global IPv6 addresses too (link-local always exists).
    pub ipv6: bool,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub ns: String,
    pub ifname: String,
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
    /// The host's port on the bridge, in the switch namespace.
    pub bridge_port: String,
}

pub struct Lab {
    prefix: String,
    hosts: Vec<Host>,
    client: Host,
    switch: String,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) threads: Vec<std::thread::JoinHandle<Option<()>>>,
    // Dropped last: namespaces go after the threads and children inside them.
    _namespaces: Vec<Netns>,
}

impl Lab {
    pub fn new(spec: LabSpec) -> io::Result<Lab> {
        let prefix = unique_prefix();
        let mut namespaces = Vec::new();
        let sw = Netns::create(format!("{prefix}-sw"))?;
        let switch = sw.name.clone();
        namespaces.push(sw);
        ip(&[
            "-n",
            &switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        let mut hosts = Vec::new();
        for i in 0..=spec.hosts {
            let client = i == spec.hosts;
            let role = if client {
                "c".to_string()
            } else {
                format!("h{i}")
            };
            let last = if client { 2 } else { 11 + i as u8 };
            let ns = Netns::create(format!("{prefix}-{role}"))?;
            let port = format!("{prefix}{role}");
            let name = ns.name.clone();
            namespaces.push(ns);
            // No DAD on the lab's own addresses: fresh namespaces would otherwise spend a
            // second with a tentative link-local address.
            for k in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ] {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &name, "sysctl", "-q", "-w", k])
                    .output();
            }
            plug(&switch, "br0", &name, "eth0", &port)?;
            let ip4 = Ipv4Addr::new(192, 0, 2, last);
            let ip6 = Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                u16::from_str_radix(&last.to_string(), 16).unwrap_or(2),
            );
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ip4}/24"),
                "dev",
                "eth0",
            ])?;
            if spec.ipv6 {
                ip(&[
                    "-n",
                    &name,
                    "addr",
                    "add",
                    &format!("{ip6}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ])?;
            }
            hosts.push(Host {
                ns: name,
                ifname: "eth0".into(),
                ip4,
                ip6,
                bridge_port: port,
            });
        }
        let client = hosts.pop().expect("client");
        Ok(Lab {
            prefix,
            hosts,
            client,
            switch,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            _namespaces: namespaces,
        })
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn client(&self) -> &Host {
        &self.client
    }

    pub fn client_ns(&self) -> &str {
        &self.client.ns
    }

    pub fn switch_ns(&self) -> &str {
        &self.switch
    }

    /// A second LAN: bridge `br1` in the switch namespace, an `eth1` on it in every host
    /// with `host_addr(i)`, and `pods` namespaces ("pods") with `pod_addr(k)` on it.
    /// Returns the pods' namespace names. Hosts forward between their two LANs.
    pub fn add_pod_network(
        &mut self,
        pods: usize,
        host_addr: impl Fn(usize) -> String,
        pod_addr: impl Fn(usize) -> String,
    ) -> io::Result<Vec<String>> {
        let sw = self.switch.clone();
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br1",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", &sw, "link", "set", "br1", "up"])?;
        let attach = |ns: &str, port: &str, addr: &str| -> io::Result<()> {
            plug(&sw, "br1", ns, "eth1", port)?;
            ip(&["-n", ns, "addr", "add", addr, "dev", "eth1"])
        };
        for i in 0..self.hosts.len() {
            let ns = self.hosts[i].ns.clone();
            attach(&ns, &format!("{}p{i}", self.prefix), &host_addr(i))?;
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv4.ip_forward=1",
                ])
                .output();
        }
        let mut names = Vec::new();
        for k in 0..pods {
            let ns = Netns::create(format!("{}-pod{k}", self.prefix))?;
            let name = ns.name.clone();
            self._namespaces.push(ns);
            attach(&name, &format!("{}q{k}", self.prefix), &pod_addr(k))?;
            names.push(name);
        }
        Ok(names)
    }

    /// Takes host `i`'s bridge port down: its `eth0` loses carrier, like a pulled cable.
    pub fn cut_link(&self, i: usize) -> io::Result<()> {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &self.hosts[i].bridge_port,
            "down",
        ])
    }

    pub fn restore_link(&self, i: usize) -> io::Result<()> {
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &self.hosts[i].bridge_port,
            "up",
        ])
    }

    /// Gives host `i` a second NIC `ifname` on the same bridge, up, with `cidr`: an
    /// interface that appears while a daemon already runs.
    pub fn add_nic(&self, i: usize, ifname: &str, cidr: &str) -> io::Result<()> {
        let ns = &self.hosts[i].ns;
        plug(
            &self.switch,
            "br0",
            ns,
            ifname,
            &format!("{}n{i}", self.prefix),
        )?;
        ip(&["-n", ns, "addr", "add", cidr, "dev", ifname])
    }

    /// Runs a command inside `ns` and waits for it.
    pub fn exec(&self, ns: &str, args: &[&str]) -> io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
    }

    /// Starts `cmd` inside `ns` (`ip netns exec` execs it, so the pid is the command's).
    pub fn spawn(&self, ns: &str, cmd: Command) -> io::Result<LabChild> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.stdin(Stdio::null());
        Ok(LabChild { child: c.spawn()? })
    }

    /// Like `spawn`, with stderr and stdout going to `log`.
    pub fn spawn_logged(&self, ns: &str, cmd: Command, log: std::fs::File) -> io::Result<LabChild> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        Ok(LabChild { child: c.spawn()? })
    }

    /// Which hosts have `vip` configured.
    pub fn vip_holders(&self, vip: IpAddr) -> Vec<usize> {
        let needle = format!(" {vip}/");
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                Command::new("ip")
                    .args(["-n", &h.ns, "-o", "addr", "show"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains(&needle))
                    .unwrap_or(false)
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// A veth from `ns` (named `ifname` there) to port `port` of `bridge` in the switch
/// namespace, both ends up.
fn plug(switch: &str, bridge: &str, ns: &str, ifname: &str, port: &str) -> io::Result<()> {
    ip(&[
        "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", port, "netns", switch,
    ])?;
    ip(&["-n", switch, "link", "set", port, "master", bridge, "up"])?;
    ip(&["-n", ns, "link", "set", ifname, "up"])
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A process in the lab, killed (SIGKILL) on drop if still running.
pub struct LabChild {
    child: Child,
}

impl LabChild {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), sig).map_err(io::Error::from)
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(Some(s));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for LabChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
