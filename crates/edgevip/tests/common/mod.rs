//! Shared by the lab tests: the cluster driver from `edgevip-lab`, pointed at this build.

#![allow(dead_code)]

#[allow(unused_imports)]
pub use edgevip_lab::services::{lb_service, lb_service_in, recorded};
#[allow(unused_imports)]
pub use edgevip_lab::{API, Node, VIP4, VIP6};

use edgevip::status::Status;

pub type Cluster = edgevip_lab::Cluster;

pub fn cluster(test: &str, hosts: usize, ipv6: bool) -> Option<Cluster> {
    Cluster::new(test, hosts, ipv6, env!("CARGO_BIN_EXE_edgevip"))
}

pub fn status(c: &Cluster, i: usize) -> Status {
    serde_json::from_str(&c.status_json(i, API)).expect("status JSON")
}

/// A VRRPv3 advert for 192.0.2.100 from `src` to `dst`, as a host on the segment sends it.
pub fn advert(vrid: u8, src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, priority: u8) -> Vec<u8> {
    advert_listing(vrid, src, dst, priority, &["192.0.2.100".parse().unwrap()])
}

/// A VRRPv3 advert listing `vips`.
pub fn advert_listing(
    vrid: u8,
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    priority: u8,
    vips: &[std::net::IpAddr],
) -> Vec<u8> {
    let a = vrrp::packet::Advert {
        version: vrrp::packet::Version::V3,
        vrid,
        priority,
        interval_cs: 10,
        addresses: vips.to_vec(),
        auth: vrrp::packet::Auth::None,
    };
    vrrp::packet::encode(
        &a,
        src.into(),
        dst.into(),
        vrrp::packet::ChecksumForm::PseudoHeader,
    )
    .unwrap()
}

/// A raw protocol-112 socket (call it in the sender's namespace): TTL 255 (so what it sends
/// passes the TTL check and reaches the decoder), multicast out of `src`, and no DF (so
/// 5,000-byte datagrams are fragmented).
pub fn raw_vrrp_socket(src: std::net::Ipv4Addr) -> socket2::Socket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(vrrp::wire::IPPROTO_VRRP))),
    )
    .expect("raw socket");
    s.set_ttl_v4(255).unwrap();
    s.set_multicast_ttl_v4(255).unwrap();
    s.set_multicast_if_v4(&src).unwrap();
    let dont: libc::c_int = libc::IP_PMTUDISC_DONT;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int with its exact size, as
    // IP_MTU_DISCOVER expects.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&dont as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "IP_MTU_DISCOVER");
    s
}

/// Every address recorded in `<ns>/<name>`'s status.loadBalancer.ingress, in order.
pub fn ingress(k: &edgevip_lab::KubeLab, ns: &str, name: &str) -> Vec<String> {
    k.api
        .get("v1", "Service", Some(ns), name)
        .and_then(|s| {
            s["status"]["loadBalancer"]["ingress"].as_array().map(|a| {
                a.iter()
                    .filter_map(|i| i["ip"].as_str())
                    .map(str::to_string)
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The notes of the Events (events.k8s.io/v1) of `reason` regarding Service `<ns>/<name>`.
pub fn service_events(k: &edgevip_lab::KubeLab, reason: &str, ns: &str, name: &str) -> Vec<String> {
    k.api
        .list("events.k8s.io/v1", "Event")
        .iter()
        .filter(|e| {
            e["reason"] == reason
                && e["regarding"]["kind"] == "Service"
                && e["regarding"]["namespace"] == ns
                && e["regarding"]["name"] == name
        })
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `f`'s first `Some`, asked every 50 ms for at most `secs` (the logs on failure).
pub fn wait<T>(k: &edgevip_lab::KubeLab, what: &str, secs: u64, f: impl Fn() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(secs),
            "{what} within {secs} s\n{}",
            k.cluster.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An `edgevip` process in a node's namespace, killed on drop. Its output goes to `log`,
/// and its record of BGP VIPs on `lo` next to it (the lab's nodes share the host's /run).
pub struct NsDaemon {
    child: Option<std::process::Child>,
    log: std::path::PathBuf,
}

impl NsDaemon {
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        ns: &str,
        args: &[S],
        log: std::path::PathBuf,
    ) -> NsDaemon {
        let out = std::fs::File::create(&log).unwrap();
        let record = log.parent().unwrap().join("bgp-lo-vips");
        let child = std::process::Command::new("ip")
            .env("EDGEVIP_BGP_LO_STATE", record)
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_edgevip")])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        NsDaemon {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: nothing is cleaned up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn hup(&self) {
        if let Some(c) = &self.child {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP);
        }
    }

    /// SIGTERM, then the exit code within `bound` (`None`: still running, then killed).
    pub fn term(&mut self, bound: std::time::Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = std::time::Instant::now();
        while start.elapsed() < bound {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}
