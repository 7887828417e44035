//! The BGP mode's failover benchmark, with VRRP in the same run for comparison.
//!
//! BGP: the routed lab (`edgevip_lab::bgp`: FRR router with ECMP at layer 4 and BFD
//! 100 ms x 3, three edges each running `edgevip run` with `announce: bgp` and its own
//! FRR). VRRP: the L2 namespace lab of `bench/failover` (3 hosts, priorities 150/140/130,
//! VRRPv3 adverts every 100 ms). Each run on a fresh lab.
//!
//! The client is the same in both labs: 4 threads in the client's namespace, each making
//! short TCP connections to the VIP one after the other (a new source port each, so the
//! router's ECMP hashes each one anew), connect and answer each within 100 ms; a TCP
//! responder on every node answers its name and closes.
//!
//! What is measured, "outage": from the failure (the instant the bench cut or killed the
//! node) to the start of the last connection attempt that failed after it, i.e. for how
//! long a new connection could still fail. With BGP only the flows hashed to the dead node
//! fail (about a third); with VRRP every flow fails until the backup takes over. A run
//! with no failed attempt has outage 0.
//!
//! Scenarios:
//! - `kill`: node death. BGP: edge 0 goes silent (every packet it sends dropped, link up),
//!   its edgevip and its FRR get SIGKILL: only BFD tells the router. VRRP: the master's
//!   link is cut, its edgevip gets SIGKILL (`bench/failover`'s "node death").
//! - `term`: SIGTERM of edge 0's edgevip (BGP): connections lost (should be 0; a reset is
//!   the router's hash-threshold ECMP moving a flow between nodes that stay) and the time
//!   until the daemon exited.
//!
//! Usage: edgevip-bench-bgp [--edgevip PATH] [--quick] [--runs N] [--only kill,term]
//! (as root; `bench/bgp`). A later scenario (Kubernetes: ConfigMap edit -> route at the
//! router) adds a name to `SCENARIOS` and a branch in `main`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edgevip_lab::bgp::{
    BgpLab, ClientGap, EDGE_ASN, PASSWORD, RESPONDER_PORT, ROUTER_ASN, client_gap, frr_available,
    probe_connections, wait_for,
};
use edgevip_lab::procstat::stats;
use edgevip_lab::{Cluster, Node, VIP4, in_netns};

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const BFD: Duration = Duration::from_millis(100);
const CLIENTS: usize = 4;
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);
/// Client traffic before the failure, and after it.
const BEFORE: Duration = Duration::from_millis(700);
const AFTER: Duration = Duration::from_millis(2500);
/// The TCP port of the responders in the VRRP lab (its UDP responders hold 7007).
const VRRP_TCP_PORT: u16 = 7009;

const SCENARIOS: [&str; 2] = ["kill", "term"];

struct Args {
    bin: PathBuf,
    runs: usize,
    only: Vec<String>,
}

fn args() -> Args {
    let mut out = Args {
        bin: std::env::current_exe()
            .expect("own path")
            .with_file_name("edgevip"),
        runs: 5,
        only: SCENARIOS.iter().map(|s| s.to_string()).collect(),
    };
    let mut a = std::env::args().skip(1);
    while let Some(x) = a.next() {
        match x.as_str() {
            "--edgevip" => out.bin = a.next().expect("--edgevip PATH").into(),
            "--quick" => out.runs = 2,
            "--runs" => {
                out.runs = a
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--runs N (N >= 1)")
            }
            "--only" => {
                out.only = a
                    .next()
                    .expect("--only kill,term")
                    .split(',')
                    .map(str::to_string)
                    .collect();
                for s in &out.only {
                    assert!(SCENARIOS.contains(&s.as_str()), "unknown scenario {s}");
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(out.runs >= 1, "--runs N (N >= 1)");
    out
}

fn main() {
    edgevip_lab::cleanup_on_panic();
    let Args { bin, runs, only } = args();
    assert!(
        bin.exists(),
        "{} not found: cargo build --release",
        bin.display()
    );
    if !edgevip_lab::root_or_skip("bench-bgp") || !frr_available("bench-bgp") {
        std::process::exit(1);
    }
    println!(
        "edgevip {}; BGP: FRR router, ECMP layer 4, BFD 100 ms x 3, 3 edges; VRRP: v3 100 ms, 3 hosts",
        bin.display()
    );
    println!(
        "client: {CLIENTS} threads of short TCP connections to the VIP (new source port each, \
         {} ms connect/answer timeout).",
        ATTEMPT_TIMEOUT.as_millis()
    );
    println!(
        "outage = failure -> start of the last failed connection attempt (how long new \
         connections could still fail). Median of {runs} runs (max), ms.\n"
    );
    println!("| scenario | measure | BGP + BFD | VRRP | BGP / VRRP |");
    println!("|---|---|---|---|---|");
    let mut raw = String::new();
    if only.iter().any(|s| s == "kill") {
        let (mut bgp, mut vrrp) = (Vec::new(), Vec::new());
        let mut route_gone = Vec::new();
        let mut failed = (Vec::new(), Vec::new());
        // Interleaved, so a noisy moment on the shared cores hits both.
        for _ in 0..runs {
            let (g, r) = bgp_kill(&bin);
            bgp.push(ms(g.outage));
            failed.0.push(g.failed as f64);
            route_gone.push(ms(r));
            raw.push_str(&format!(
                "kill BGP: {g:?}, route gone at the router {r:?}\n"
            ));
            let g = vrrp_kill(&bin);
            vrrp.push(ms(g.outage));
            failed.1.push(g.failed as f64);
            raw.push_str(&format!("kill VRRP: {g:?}\n"));
        }
        let (b, v) = (stats(&bgp), stats(&vrrp));
        let ratio = if v.0 > 0.0 {
            format!("{:.2}", b.0 / v.0)
        } else {
            "-".into()
        };
        println!(
            "| node death (BGP: silent + SIGKILL edgevip & FRR; VRRP: link cut + SIGKILL) | outage | {:.0} (max {:.0}) | {:.0} (max {:.0}) | {ratio} |",
            b.0, b.1, v.0, v.1
        );
        let (fb, fv) = (stats(&failed.0), stats(&failed.1));
        println!(
            "| | failed attempts (each holds its client thread 100 ms) | {:.0} (max {:.0}) | {:.0} (max {:.0}) | |",
            fb.0, fb.1, fv.0, fv.1
        );
        let r = stats(&route_gone);
        println!(
            "| | dead next hop out of the router's table | {:.0} (max {:.0}) | - | |",
            r.0, r.1
        );
    }
    if only.iter().any(|s| s == "term") {
        let (mut lost, mut resets, mut stop) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (g, r, t) = bgp_term(&bin);
            lost.push((g.failed - r.min(g.failed)) as f64);
            resets.push(r as f64);
            stop.push(ms(t));
            raw.push_str(&format!("term BGP: {g:?}, resets {r}, stop {t:?}\n"));
        }
        let (l, r, t) = (stats(&lost), stats(&resets), stats(&stop));
        println!(
            "| SIGTERM of one edge (BGP) | connections lost (timeouts) | {:.0} (max {:.0}) | - | |",
            l.0, l.1
        );
        println!(
            "| | connections reset (router re-hash) | {:.0} (max {:.0}) | - | |",
            r.0, r.1
        );
        println!("| | SIGTERM -> exit | {:.0} (max {:.0}) | - | |", t.0, t.1);
    }
    println!("\nruns:\n{raw}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// An edgevip process in a node's namespace, killed on drop.
struct Daemon(Option<Child>);

impl Daemon {
    fn start(bin: &Path, ns: &str, config: &Path, log: &Path) -> Daemon {
        let out = std::fs::File::create(log).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("edgevip");
        Daemon(Some(child))
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// Waits (at most `bound`) for the exit; the time it took.
    fn wait(&mut self, bound: Duration) -> Option<Duration> {
        let mut c = self.0.take()?;
        let t0 = Instant::now();
        while t0.elapsed() < bound {
            if let Ok(Some(_)) = c.try_wait() {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Edge `i`'s edgevip config: its FRR, the router as peer with BFD 100 ms x 3, one BGP
/// instance announcing `VIP` (a check that always passes).
fn edge_config(lab: &BgpLab, i: usize) -> String {
    let e = &lab.edges[i];
    let dir = e.frr.dir.display();
    format!(
        "api: {{listen: \"127.0.0.1:9180\"}}\nbgp:\n  asn: {EDGE_ASN}\n  router_id: {}\n  frr_config: {dir}/frr.conf\n  \
         frr_vty_socket: {dir}\n  drain_time: 300ms\n  peers:\n    - {{address: {}, asn: {ROUTER_ASN}, \
         password: {PASSWORD}, hold_time: 9s, keepalive: 3s, bfd: {{interval: {}ms, multiplier: 3}}}}\n\
         instances:\n  - name: web\n    announce: bgp\n    vips: [{VIP}]\n    health_checks:\n      \
         - {{name: up, exec: [/usr/bin/true], interval: 1s, timeout: 1s, rise: 1, fall: 1}}\n",
        e.addr,
        e.router_addr,
        BFD.as_millis(),
    )
}

/// A routed lab with edgevip on each edge, the VIP over 3 next hops and BFD up everywhere.
fn bgp_lab(bin: &Path) -> (BgpLab, Vec<Daemon>) {
    let mut lab = BgpLab::new(3).expect("BGP lab");
    lab.router_frr()
        .apply(&lab.router_config(BFD))
        .expect("router config");
    let mut daemons = Vec::new();
    for i in 0..3 {
        let path = lab.edges[i].frr.dir.join("edgevip.yaml");
        std::fs::write(&path, edge_config(&lab, i)).expect("config");
        daemons.push(Daemon::start(
            bin,
            &lab.edges[i].ns,
            &path,
            &lab.edges[i].frr.dir.join("edgevip.log"),
        ));
    }
    lab.start_responders(VIP).expect("responders");
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    let peers: Vec<IpAddr> = all.iter().map(|a| IpAddr::V4(*a)).collect();
    wait_for(Duration::from_secs(30), || {
        lab.router_next_hops(VIP) == all
            && lab.router_frr().speaker(&peers).is_ok_and(|s| {
                s.peers
                    .iter()
                    .all(|p| p.bfd.as_ref().is_some_and(|b| b.status == "up"))
            })
    })
    .unwrap_or_else(|| {
        panic!(
            "VIP not over 3 next hops with BFD up in 30 s: {:?}",
            lab.router_next_hops(VIP)
        )
    });
    (lab, daemons)
}

/// Node death in the routed lab: the client's outage, and when the router's kernel table
/// lost the dead next hop (from the failure; bounded at 10 s).
fn bgp_kill(bin: &Path) -> (ClientGap, Duration) {
    let (mut lab, daemons) = bgp_lab(bin);
    let target = SocketAddr::new(IpAddr::V4(VIP), RESPONDER_PORT);
    let (origin, probe) = probe_connections(
        &lab.client_ns,
        target,
        CLIENTS,
        BEFORE + AFTER,
        ATTEMPT_TIMEOUT,
    )
    .expect("client");
    std::thread::sleep(BEFORE);
    let event = origin.elapsed();
    let t0 = Instant::now();
    lab.freeze(0).expect("freeze");
    daemons[0].signal(nix::sys::signal::Signal::SIGKILL);
    lab.edges[0].frr.kill();
    let want = vec![lab.edges[1].addr, lab.edges[2].addr];
    let mut gone = Duration::from_secs(10);
    while t0.elapsed() < Duration::from_secs(10) {
        if lab.router_next_hops(VIP) == want {
            gone = t0.elapsed();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let attempts = probe.join().expect("client");
    (client_gap(&attempts, event), gone)
}

/// SIGTERM of edge 0 in the routed lab: what the client saw, the resets among the
/// failures, and the time until the daemon exited.
fn bgp_term(bin: &Path) -> (ClientGap, usize, Duration) {
    let (lab, mut daemons) = bgp_lab(bin);
    let target = SocketAddr::new(IpAddr::V4(VIP), RESPONDER_PORT);
    let (origin, probe) = probe_connections(
        &lab.client_ns,
        target,
        CLIENTS,
        BEFORE + AFTER,
        ATTEMPT_TIMEOUT,
    )
    .expect("client");
    std::thread::sleep(BEFORE);
    let event = origin.elapsed();
    daemons[0].signal(nix::sys::signal::Signal::SIGTERM);
    let stop = daemons[0]
        .wait(Duration::from_secs(15))
        .expect("edgevip exits within 15 s of SIGTERM");
    let attempts = probe.join().expect("client");
    let g = client_gap(&attempts, event);
    (g, g.resets, stop)
}

/// Node death in the L2 lab, VRRPv3 at 100 ms: the client's outage.
fn vrrp_kill(bin: &Path) -> ClientGap {
    let mut c = Cluster::new("bench-bgp", 3, false, bin).expect("L2 lab");
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..3 {
        let ns = c.lab.host(i).ns.clone();
        threads.push(tcp_responder(&ns, i, stop.clone()));
    }
    for (i, prio) in [150u8, 140, 130].into_iter().enumerate() {
        c.start(
            i,
            &Node {
                vrid: 51,
                priority: prio,
                version: 3,
                interval: "100ms",
                ..Node::default()
            }
            .yaml(),
        );
    }
    c.wait_holder(VIP4, 0, Duration::from_secs(5));
    let target = SocketAddr::new(VIP4.parse().unwrap(), VRRP_TCP_PORT);
    let (origin, probe) = probe_connections(
        c.lab.client_ns(),
        target,
        CLIENTS,
        BEFORE + AFTER,
        ATTEMPT_TIMEOUT,
    )
    .expect("client");
    std::thread::sleep(BEFORE);
    let event = origin.elapsed();
    c.lab.cut_link(0).expect("cut");
    c.kill(0);
    let attempts = probe.join().expect("client");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    client_gap(&attempts, event)
}

/// A TCP responder thread in `ns` on `VRRP_TCP_PORT`: answers `host{i}` and closes.
fn tcp_responder(ns: &str, i: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Option<()>> {
    in_netns(ns, move || {
        let l = TcpListener::bind(("0.0.0.0", VRRP_TCP_PORT)).expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(format!("host{i}\n").as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    })
    .expect("responder")
}
