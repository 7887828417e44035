//! `edgevip run` with `announce: bgp` in the routed lab: each edge node runs edgevip and
//! its own FRR; the router (FRR, ECMP, BFD) spreads the VIP over the nodes whose health
//! check passes. Needs root and Debian's `frr` + `frr-pythontools`; prints SKIP otherwise.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgevip_lab::bgp::{BgpLab, EDGE_ASN, PASSWORD, ROUTER_ASN, frr_available, wait_for};
use edgevip_lab::root_or_skip;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const BFD: Duration = Duration::from_millis(100);

/// An edgevip process in a node's namespace, killed on drop.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &str, config: &Path, log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_edgevip"),
                "run",
                "--config",
            ])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code within `bound` (`None`: still running, killed).
    fn term(&mut self, bound: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < bound {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Edge `i`'s edgevip config: its FRR, the router as peer, one BGP instance whose check
/// passes while `flag` exists.
fn config(lab: &BgpLab, i: usize, flag: &Path) -> String {
    let e = &lab.edges[i];
    let dir = e.frr.dir.display();
    format!(
        "bgp:\n  asn: {EDGE_ASN}\n  router_id: {}\n  frr_config: {dir}/frr.conf\n  \
         frr_vty_socket: {dir}\n  drain_time: 300ms\n  peers:\n    - {{address: {}, asn: {ROUTER_ASN}, \
         password: {PASSWORD}, hold_time: 9s, keepalive: 3s, bfd: {{interval: {}ms}}}}\n\
         instances:\n  - name: web\n    announce: bgp\n    vips: [{VIP}]\n    health_checks:\n      \
         - {{name: flag, exec: [/usr/bin/test, -e, {}], interval: 50ms, timeout: 1s, rise: 1, fall: 1}}\n",
        e.addr,
        e.router_addr,
        BFD.as_millis(),
        flag.display()
    )
}

fn lo_has_vip(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-4", "addr", "show", "dev", "lo"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/32"))
}

#[test]
fn daemons_announce_while_healthy_withdraw_on_failure_and_on_sigterm() {
    if !root_or_skip("bgp_daemon") || !frr_available("bgp_daemon") {
        return;
    }
    let mut lab = BgpLab::new(3).unwrap();
    lab.router.frr().apply(&lab.router_config(BFD)).unwrap();
    let flags: Vec<PathBuf> = lab
        .edges
        .iter()
        .map(|e| e.frr.dir.join("healthy"))
        .collect();
    let mut daemons = Vec::new();
    for (i, flag) in flags.iter().enumerate() {
        std::fs::write(flag, "").unwrap();
        let path = lab.edges[i].frr.dir.join("edgevip.yaml");
        std::fs::write(&path, config(&lab, i, flag)).unwrap();
        daemons.push(Daemon::start(
            &lab.edges[i].ns,
            &path,
            lab.edges[i].frr.dir.join("edgevip.log"),
        ));
    }
    lab.start_responders(VIP).unwrap();
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    let took = wait_for(Duration::from_secs(30), || lab.router_next_hops(VIP) == all);
    assert!(
        took.is_some(),
        "router next hops {:?}\nedge0's log:\n{}",
        lab.router_next_hops(VIP),
        daemons[0].log()
    );
    eprintln!("bgp_daemon: VIP over 3 next hops {took:?} after start");
    assert!(lab.edges.iter().all(|e| lo_has_vip(&e.ns)));
    let (answers, failed) = lab.connect_many(VIP, 150).unwrap();
    assert_eq!((answers.len(), failed), (3, 0), "{answers:?}");

    // Edge 1's check fails: its route goes, the others stay.
    std::fs::remove_file(&flags[1]).unwrap();
    let t0 = Instant::now();
    let two = vec![all[0], all[2]];
    let gone = wait_for(Duration::from_secs(10), || lab.router_next_hops(VIP) == two);
    assert!(gone.is_some(), "edge1 not withdrawn:\n{}", daemons[1].log());
    eprintln!(
        "bgp_daemon: failing check → route gone at the router after {:?} (check interval 50 ms, fall 1)",
        t0.elapsed()
    );
    let (answers, failed) = lab.connect_many(VIP, 60).unwrap();
    assert_eq!(failed, 0);
    assert!(!answers.contains_key("edge1"), "{answers:?}");
    // The VIP stays on lo: only the announcement follows the check.
    assert!(lo_has_vip(&lab.edges[1].ns));
    // And comes back with the check.
    std::fs::write(&flags[1], "").unwrap();
    let back = wait_for(Duration::from_secs(10), || lab.router_next_hops(VIP) == all);
    assert!(back.is_some(), "edge1 not announced again");
    eprintln!("bgp_daemon: check passing again → route back after {back:?}");

    // SIGTERM of edge 2 while the client keeps connecting: no connection fails.
    let (report, code) = std::thread::scope(|s| {
        let client = s.spawn(|| {
            lab.connect_during(VIP, Duration::from_millis(2500))
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let code = daemons[2].term(Duration::from_secs(15));
        eprintln!(
            "bgp_daemon: SIGTERM → exit {code:?} after {:?}",
            t0.elapsed()
        );
        (client.join().unwrap(), code)
    });
    assert_eq!(code, Some(0), "edge2's log:\n{}", daemons[2].log());
    let (answers, failed) = report;
    eprintln!("bgp_daemon: during the stop: {answers:?}, {failed} failed");
    assert_eq!(failed, 0, "connections lost during a graceful stop");
    assert!(
        answers.get("edge2").is_some_and(|&n| n > 0),
        "the stop began before the client"
    );
    assert_eq!(lab.router_next_hops(VIP), vec![all[0], all[1]]);
    assert!(
        !lo_has_vip(&lab.edges[2].ns),
        "the VIP left on lo after the stop"
    );
    let log = daemons[2].log();
    assert!(
        log.contains("no peer is advertised a VIP any more"),
        "{log}"
    );
}
