//! A cluster of real `edgevip` (or keepalived) processes on the lab, shared by the
//! integration tests, the demo and the benchmark. Its helpers panic with the daemons' logs
//! when an expectation fails: they are test and benchmark drivers, not library code.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{KeepalivedConf, Lab, LabChild, LabSpec, ProbeReport, Prober};

pub const VIP4: &str = "192.0.2.100";
pub const VIP6: &str = "2001:db8::100";
pub const PORT: u16 = 7007;

/// Reports a skipped test: prints `SKIP: <test>: <why>` and appends that line to the file
/// named by `$EDGEVIP_SKIP_LOG` (scripts/test counts them and fails on any as root).
/// The test is named as libtest names its thread (`test` when it runs on the main thread).
pub fn skip(test: &str, why: &str) {
    let thread = std::thread::current();
    let name = thread.name().filter(|n| *n != "main").unwrap_or(test);
    let line = format!("SKIP: {name}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("EDGEVIP_SKIP_LOG") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            panic!("{line} (and could not record it in {path:?}: {e})");
        }
    }
}

/// One cluster at a time per process: timing bounds in the tests assume the two cores are
/// not shared with another cluster's daemons.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Cluster {
    pub lab: Lab,
    procs: Vec<Option<LabChild>>,
    dir: PathBuf,
    prober: Option<Prober>,
    bin: PathBuf,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// `None` (after a SKIP message) when the lab cannot run here. `bin` is the edgevip
    /// executable to run.
    pub fn new(test: &str, hosts: usize, ipv6: bool, bin: impl Into<PathBuf>) -> Option<Cluster> {
        if !crate::root_or_skip(test) {
            return None;
        }
        // A panicking test poisons the lock; the next one may still run.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let mut lab = Lab::new(LabSpec { hosts, ipv6 }).expect("lab");
        lab.start_responders(PORT).expect("responders");
        let dir = std::env::temp_dir().join(format!("edgevip-it-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Some(Cluster {
            lab,
            procs: (0..hosts).map(|_| None).collect(),
            dir,
            prober: None,
            bin: bin.into(),
            _turn: turn,
        })
    }

    pub fn config_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("host{i}.yaml"))
    }

    pub fn write_config(&self, i: usize, yaml: &str) {
        std::fs::write(self.config_path(i), yaml).expect("write config");
    }

    /// Starts edgevip on host `i` with `yaml` (which should list `api.listen`).
    pub fn start(&mut self, i: usize, yaml: &str) {
        self.write_config(i, yaml);
        let ns = self.lab.host(i).ns.clone();
        let log = std::fs::File::create(self.dir.join(format!("host{i}.log"))).expect("log");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["run", "--config"])
            .arg(self.config_path(i))
            .env("EDGEVIP_LOG", "info,edgevip=debug");
        self.procs[i] = Some(self.lab.spawn_logged(&ns, cmd, log).expect("spawn edgevip"));
    }

    /// Starts edgevip on host `i` with arbitrary arguments (e.g. Kubernetes mode).
    pub fn start_args(&mut self, i: usize, args: &[String]) {
        let ns = self.lab.host(i).ns.clone();
        let log = std::fs::File::create(self.dir.join(format!("host{i}.log"))).expect("log");
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).env("EDGEVIP_LOG", "info,edgevip=debug");
        self.procs[i] = Some(self.lab.spawn_logged(&ns, cmd, log).expect("spawn edgevip"));
    }

    /// Starts edgevip on host `i` with arguments and extra environment variables (e.g.
    /// `run --config-env VAR` with the config in `VAR`, as a static Pod runs it).
    pub fn start_env(&mut self, i: usize, args: &[String], env: &[(&str, &str)]) {
        let ns = self.lab.host(i).ns.clone();
        let log = std::fs::File::create(self.dir.join(format!("host{i}.log"))).expect("log");
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).env("EDGEVIP_LOG", "info,edgevip=debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.procs[i] = Some(self.lab.spawn_logged(&ns, cmd, log).expect("spawn edgevip"));
    }

    /// Starts keepalived 2.2.7 on host `i` instead of edgevip.
    pub fn start_keepalived(&mut self, i: usize, conf: &KeepalivedConf) {
        self.start_keepalived_many(i, std::slice::from_ref(conf));
    }

    /// keepalived with several `vrrp_instance`s on host `i`.
    pub fn start_keepalived_many(&mut self, i: usize, confs: &[KeepalivedConf]) {
        let p = self
            .lab
            .spawn_keepalived(i, confs, &self.dir)
            .expect("spawn keepalived");
        self.procs[i] = Some(p);
    }

    /// keepalived on host `i` with a whole keepalived.conf.
    pub fn start_keepalived_text(&mut self, i: usize, conf: &str) {
        let p = self
            .lab
            .spawn_keepalived_text(i, conf, &self.dir)
            .expect("spawn keepalived");
        self.procs[i] = Some(p);
    }

    pub fn signal(&mut self, i: usize, sig: nix::sys::signal::Signal) {
        if let Some(p) = &self.procs[i] {
            p.signal(sig).expect("signal");
        }
    }

    pub fn kill(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGKILL);
        if let Some(mut p) = self.procs[i].take() {
            let _ = p.wait_timeout(Duration::from_secs(5));
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn term(&mut self, i: usize) -> Option<i32> {
        self.signal(i, nix::sys::signal::Signal::SIGTERM);
        let mut p = self.procs[i].take()?;
        p.wait_timeout(Duration::from_secs(10))
            .ok()
            .flatten()
            .and_then(|s| s.code())
    }

    pub fn hup(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGHUP);
    }

    pub fn holders(&self, vip: &str) -> Vec<usize> {
        self.lab.vip_holders(vip.parse().unwrap())
    }

    /// Waits until exactly one host other than `not` holds `vip`, stably for 300 ms (not a
    /// transient of an election); returns it, or panics with the logs after `timeout`.
    /// Without preemption, which node wins a simultaneous start is decided by milliseconds:
    /// callers do not presume it.
    pub fn single_holder(&self, vip: &str, not: Option<usize>, timeout: Duration) -> usize {
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let h = self.sole_holder(vip, not, left);
            std::thread::sleep(Duration::from_millis(300));
            if self.holders(vip) == [h] {
                return h;
            }
        }
    }

    /// The first moment exactly one host other than `not` holds `vip` (polled every few
    /// ms, for timing a failover); panics with the logs after `timeout`.
    pub fn sole_holder(&self, vip: &str, not: Option<usize>, timeout: Duration) -> usize {
        let start = Instant::now();
        loop {
            let h = self.holders(vip);
            if h.len() == 1 && Some(h[0]) != not {
                return h[0];
            }
            assert!(
                start.elapsed() < timeout,
                "{vip}: holders {h:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until exactly `host` holds `vip`; panics with the logs otherwise.
    pub fn wait_holder(&self, vip: &str, host: usize, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.holders(vip) == [host] {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{vip}: holders {:?}, expected [{host}]\n{}",
            self.holders(vip),
            self.logs()
        );
    }

    /// Waits until, among the hosts other than `dead` (killed and cut off: it keeps a stale
    /// address nobody can reach), exactly `host` holds `vip`, and checks that this holds for
    /// 300 ms more (not a transient of an election); panics with the logs otherwise.
    pub fn wait_live_holder(&self, vip: &str, dead: usize, host: usize, timeout: Duration) {
        let live = || -> Vec<usize> {
            self.holders(vip)
                .into_iter()
                .filter(|h| *h != dead)
                .collect()
        };
        let ok = crate::wait_until(timeout, Duration::from_millis(10), || live() == [host]);
        assert!(
            ok,
            "{vip}: live holders {:?}, expected [{host}] (host {dead} is dead)\n{}",
            live(),
            self.logs()
        );
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            assert_eq!(
                live(),
                [host],
                "{vip}: a second live holder\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `host` holds `vip`, others may too (not checked to be the only one): tests use
    /// `wait_live_holder` (kept for the demo and the keepalived interop test).
    pub fn wait_holder_any(&self, vip: &str, host: usize) {
        let ok = crate::wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
            self.holders(vip).contains(&host)
        });
        assert!(
            ok,
            "{vip}: holders {:?}, expected {host} among them\n{}",
            self.holders(vip),
            self.logs()
        );
    }

    /// The value of the series named exactly `series` (with its labels) in host `i`'s
    /// `/metrics`; 0 when absent (a counter not yet created).
    pub fn metric(&self, i: usize, series: &str) -> f64 {
        let (code, text) = self.http_get(i, "/metrics");
        assert_eq!(code, 200, "/metrics on host {i}");
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// Asserts that `vip` stays on exactly `host` for `dur`.
    pub fn assert_stays(&self, vip: &str, host: usize, dur: Duration) {
        let start = Instant::now();
        while start.elapsed() < dur {
            let h = self.holders(vip);
            assert_eq!(h, [host], "{vip} moved\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts that no host holds `vip` for `dur`.
    pub fn assert_unheld(&self, vip: &str, dur: Duration) {
        let start = Instant::now();
        while start.elapsed() < dur {
            let h = self.holders(vip);
            assert!(h.is_empty(), "{vip} held by {h:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `edgevip status --json` run inside host `i`'s namespace (the API listens on that
    /// namespace's loopback).
    pub fn status_json(&self, i: usize, api: &str) -> String {
        let bin = self.bin.display().to_string();
        let out = self
            .lab
            .exec(
                &self.lab.host(i).ns,
                &[&bin, "status", "--api", api, "--json"],
            )
            .expect("edgevip status");
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `GET path` against the API on host `i` (HTTP/1.0, from inside its namespace):
    /// (status code, body).
    pub fn http_get(&self, i: usize, path: &str) -> (u16, String) {
        self.try_http_get(i, path).expect("GET from the API")
    }

    /// Like `http_get`, `None` when the API does not answer (not started yet).
    pub fn try_http_get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        self.http_get_at(i, API, path)
    }

    /// `GET path` from host `i`'s namespace to `addr` (e.g. the node address the
    /// DaemonSet's API listens on); `None` when nothing answers.
    pub fn http_get_at(&self, i: usize, addr: &str, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let (path, addr) = (path.to_string(), addr.to_string());
        let t = crate::in_netns(&self.lab.host(i).ns, move || -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(&addr)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })
        .expect("enter namespace");
        let text = t
            .join()
            .expect("http thread")
            .expect("namespace entered")
            .ok()?;
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        Some((code, body))
    }

    /// The pids of every process in host `i`'s namespace (keepalived runs two).
    pub fn pids(&self, i: usize) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.lab.host(i).ns])
            .output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn start_probe(&mut self, vip: &str) {
        let ip: IpAddr = vip.parse().unwrap();
        let p = Prober::start(
            self.lab.client_ns(),
            SocketAddr::new(ip, PORT),
            Duration::from_millis(2),
        )
        .expect("prober");
        self.prober = Some(p);
    }

    pub fn stop_probe(&mut self) -> ProbeReport {
        self.prober.take().expect("probe running").stop()
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for i in 0..self.procs.len() {
            let log =
                std::fs::read_to_string(self.dir.join(format!("host{i}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            s.push_str(&format!("--- host{i} log (last lines) ---\n"));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.iter_mut() {
            p.take();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-instance config for host `i` of the lab.
pub struct Node<'a> {
    pub name: &'a str,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
    pub interval: &'a str,
    pub preempt: bool,
    pub vips: &'a [&'a str],
    pub peers: &'a [String],
    pub auth: &'a str,
    pub track: &'a str,
}

impl Default for Node<'_> {
    fn default() -> Self {
        Node {
            name: "ingress",
            vrid: 51,
            priority: 100,
            version: 3,
            interval: "100ms",
            preempt: true,
            vips: &["192.0.2.100/24"],
            peers: &[],
            auth: "",
            track: "",
        }
    }
}

pub const API: &str = "127.0.0.1:9180";

impl Node<'_> {
    pub fn instance(&self) -> String {
        let vips: Vec<String> = self.vips.iter().map(|v| format!("\"{v}\"")).collect();
        let peers: Vec<String> = self.peers.iter().map(|v| format!("\"{v}\"")).collect();
        let mut s = format!(
            "  - name: {}\n    interface: eth0\n    vrid: {}\n    priority: {}\n    version: {}\n    \
             advert_interval: {}\n    preempt: {}\n    vips: [{}]\n    unicast_peers: [{}]\n",
            self.name,
            self.vrid,
            self.priority,
            self.version,
            self.interval,
            self.preempt,
            vips.join(", "),
            peers.join(", "),
        );
        if !self.auth.is_empty() {
            s.push_str(&format!("    auth_pass: \"{}\"\n", self.auth));
        }
        if !self.track.is_empty() {
            s.push_str(&format!("    track_interfaces: {}\n", self.track));
        }
        s
    }

    pub fn yaml(&self) -> String {
        format!("api:\n  listen: {API}\ninstances:\n{}", self.instance())
    }
}
