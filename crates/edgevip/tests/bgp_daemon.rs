//! `edgevip run` with `announce: bgp` in the routed lab: each edge node runs edgevip and
//! its own FRR; the router (FRR, ECMP, BFD) spreads the VIP over the nodes whose health
//! check passes. Needs root and Debian's `frr` + `frr-pythontools`; prints SKIP otherwise.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgevip_lab::bgp::{BgpLab, EDGE_ASN, PASSWORD, ROUTER_ASN, frr_available, wait_for};
use edgevip_lab::root_or_skip;

mod common;
use common::NsDaemon;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const VIP2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
const BFD: Duration = Duration::from_millis(100);

/// `edgevip run --config config` in `ns` (its VIP record next to `log`).
fn start(ns: &str, config: &Path, log: PathBuf) -> NsDaemon {
    let args = [
        OsStr::new("run"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    NsDaemon::start(ns, &args, log)
}

/// Edge `i`'s edgevip config: its FRR, the router as peer, one BGP instance whose check
/// passes while `flag` exists.
fn config(lab: &BgpLab, i: usize, flag: &Path) -> String {
    config_vips(lab, i, flag, &VIP.to_string())
}

fn config_vips(lab: &BgpLab, i: usize, flag: &Path, vips: &str) -> String {
    let e = &lab.edges[i];
    let dir = e.frr.dir.display();
    format!(
        "api: {{listen: \"127.0.0.1:9180\"}}\nbgp:\n  asn: {EDGE_ASN}\n  router_id: {}\n  frr_config: {dir}/frr.conf\n  \
         frr_vty_socket: {dir}\n  drain_time: 300ms\n  peers:\n    - {{address: {}, asn: {ROUTER_ASN}, \
         password: {PASSWORD}, hold_time: 9s, keepalive: 3s, bfd: {{interval: {}ms}}}}\n\
         instances:\n  - name: web\n    announce: bgp\n    vips: [{vips}]\n    health_checks:\n      \
         - {{name: flag, exec: [/usr/bin/test, -e, {}], interval: 50ms, timeout: 1s, rise: 1, fall: 1}}\n",
        e.addr,
        e.router_addr,
        BFD.as_millis(),
        flag.display()
    )
}

/// `GET path` from the API on 127.0.0.1:9180 inside `ns`.
fn http_get(ns: &str, path: &str) -> String {
    let path = path.to_string();
    let t = edgevip_lab::in_netns(ns, move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect("127.0.0.1:9180").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(
            out.split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or(out),
        )
    })
    .unwrap();
    t.join().ok().flatten().flatten().unwrap_or_default()
}

fn status(ns: &str) -> serde_json::Value {
    serde_json::from_str(&http_get(ns, "/status")).unwrap_or(serde_json::Value::Null)
}

fn lo_has_vip(ns: &str) -> bool {
    lo_has(ns, VIP)
}

fn lo_has(ns: &str, vip: Ipv4Addr) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-4", "addr", "show", "dev", "lo"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(&format!("{vip}/32"))
}

#[test]
fn daemons_announce_while_healthy_withdraw_on_failure_and_on_sigterm() {
    if !root_or_skip("bgp_daemon") || !frr_available("bgp_daemon") {
        return;
    }
    let mut lab = BgpLab::new(3).unwrap();
    lab.router_frr().apply(&lab.router_config(BFD)).unwrap();
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
        daemons.push(start(
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
    let c = lab.connect_many(VIP, 150).unwrap();
    assert_eq!((c.answers.len(), c.failed), (3, 0), "{c:?}");

    // /status and /metrics: FRR's view read back (every 3 s).
    let ok = wait_for(Duration::from_secs(8), || {
        let st = status(&lab.edges[0].ns);
        st.pointer("/bgp/peers/0/state").and_then(|v| v.as_str()) == Some("Established")
            && st.pointer("/bgp/peers/0/bfd").and_then(|v| v.as_str()) == Some("up")
            && st
                .pointer("/bgp/peers/0/advertised/0")
                .and_then(|v| v.as_str())
                == Some("203.0.113.10/32")
            && st.pointer("/bgp/instances/0/announced") == Some(&serde_json::Value::Bool(true))
    });
    assert!(ok.is_some(), "status: {}", status(&lab.edges[0].ns));
    let metrics = http_get(&lab.edges[0].ns, "/metrics");
    for line in [
        "edgevip_bgp_session_up{peer=\"192.0.2.1\"} 1",
        "edgevip_bgp_bfd_up{peer=\"192.0.2.1\"} 1",
        "edgevip_bgp_advertised_prefixes{peer=\"192.0.2.1\"} 1",
        "edgevip_bgp_announced{instance=\"web\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }

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
    let c = lab.connect_many(VIP, 60).unwrap();
    assert_eq!(c.failed, 0);
    assert!(!c.answers.contains_key("edge1"), "{c:?}");
    let st = status(&lab.edges[1].ns);
    assert_eq!(
        st.pointer("/bgp/instances/0/failing_checks/0")
            .and_then(|v| v.as_str()),
        Some("flag"),
        "{st}"
    );
    // The VIP stays on lo: only the announcement follows the check.
    assert!(lo_has_vip(&lab.edges[1].ns));
    // And comes back with the check.
    std::fs::write(&flags[1], "").unwrap();
    let back = wait_for(Duration::from_secs(10), || lab.router_next_hops(VIP) == all);
    assert!(back.is_some(), "edge1 not announced again");
    eprintln!("bgp_daemon: check passing again → route back after {back:?}");
    // Both went the vtysh fast path (a `network` line), and left FRR's running config
    // equal to the file: frr-reload finds nothing to change.
    let log = daemons[1].log();
    assert!(!log.contains("fast path failed"), "{log}");
    assert!(
        gone.unwrap() < Duration::from_secs(1),
        "withdrawal took {gone:?}"
    );
    let frr = lab.edges[1].frr.frr();
    let file = std::fs::read_to_string(&frr.config_file).unwrap();
    let pending = frr.pending(&file).unwrap();
    let changes: Vec<&str> = pending
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Lines To")
                && !l.starts_with("===")
                && !l.contains("hostname")
        })
        .collect();
    assert!(changes.is_empty(), "running config drifted: {changes:?}");

    // SIGHUP with a second VIP on edge 0: announced, no session reset at the router.
    let router_view = |i: usize| {
        let s = lab
            .router_frr()
            .speaker(&[std::net::IpAddr::V4(all[i])])
            .unwrap();
        let sess = s.peers[0].session.clone().unwrap();
        (sess.is_established(), sess.established_count, sess.uptime)
    };
    let before = router_view(0);
    let path = lab.edges[0].frr.dir.join("edgevip.yaml");
    std::fs::write(
        &path,
        config_vips(&lab, 0, &flags[0], &format!("{VIP}, {VIP2}")),
    )
    .unwrap();
    let t0 = Instant::now();
    daemons[0].hup();
    let seen = wait_for(Duration::from_secs(10), || {
        lab.router_next_hops(VIP2) == [all[0]]
    });
    assert!(seen.is_some(), "VIP2 not announced:\n{}", daemons[0].log());
    eprintln!(
        "bgp_daemon: SIGHUP with a new VIP → at the router after {:?}",
        t0.elapsed()
    );
    assert!(lo_has(&lab.edges[0].ns, VIP2));
    // bgpd counts uptime in whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let after = router_view(0);
    assert!(
        after.0 && after.1 == before.1,
        "session reset: {before:?} -> {after:?}"
    );
    assert!(
        after.2 > before.2,
        "uptime restarted: {before:?} -> {after:?}"
    );

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
    eprintln!(
        "bgp_daemon: during the stop: {:?}, {} failed ({} reset by the router's re-hash)",
        report.answers, report.failed, report.resets
    );
    // Nothing times out: no flow is sent to a node that dropped the VIP. A reset is the
    // router's ECMP re-hash moving an in-flight flow between two nodes that stay (Linux
    // hash-threshold); seen 0 or 1 per ~1,500 connections. Resilient hashing at the router
    // (as fabrics do) removes it; the node cannot.
    assert_eq!(
        report.failed, report.resets,
        "connections lost during a graceful stop: {report:?}"
    );
    assert!(report.resets <= 3, "{report:?}");
    assert!(
        report.answers.get("edge2").is_some_and(|&n| n > 0),
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

/// The router's interface on its link to edge 0.
fn router_dev(lab: &BgpLab) -> String {
    let out = Command::new("ip")
        .args(["-n", &lab.router_ns, "-4", "-o", "addr", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains(&format!(" {}/30", lab.edges[0].router_addr)))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no router link to edge 0 in {text}"))
        .to_string()
}

/// Whether an ARP request for `vip` sent from the router on its link to edge 0 is answered
/// (bounded: 2 requests, 2 s).
fn router_arping(lab: &BgpLab, vip: Ipv4Addr) -> bool {
    let dev = router_dev(lab);
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.router_ns,
            "arping",
            "-c",
            "2",
            "-w",
            "2",
            "-I",
            &dev,
        ])
        .arg(vip.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Whether a Neighbour Solicitation for `target` from the router on its link to edge 0 is
/// answered (bounded: 2 tries of 500 ms).
fn router_ndisc(lab: &BgpLab, target: Ipv6Addr) -> bool {
    let dev = router_dev(lab);
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.router_ns,
            "ndisc6",
            "-n",
            "-r",
            "2",
            "-w",
            "500",
        ])
        .arg(target.to_string())
        .arg(&dev)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn ip_ok(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().unwrap().success()
}

const OPERATOR: &str = "198.51.100.77/32";

#[test]
fn no_arp_for_bgp_vips_and_sigkill_leftovers_removed_at_restart() {
    if !root_or_skip("bgp_daemon") || !frr_available("bgp_daemon") {
        return;
    }
    let lab = BgpLab::new(1).unwrap();
    lab.router_frr().apply(&lab.router_config(BFD)).unwrap();
    let ns = lab.edges[0].ns.clone();
    let dir = lab.edges[0].frr.dir.clone();
    let flag = dir.join("healthy");
    std::fs::write(&flag, "").unwrap();
    let path = dir.join("edgevip.yaml");
    std::fs::write(&path, config(&lab, 0, &flag)).unwrap();
    let mut d = start(&ns, &path, dir.join("edgevip.log"));
    let ok = wait_for(Duration::from_secs(20), || {
        lo_has(&ns, VIP)
            && Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "nft",
                    "list",
                    "table",
                    "arp",
                    "edgevip_bgp",
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&VIP.to_string()))
    });
    assert!(ok.is_some(), "VIP or ARP table missing:\n{}", d.log());
    assert!(
        !router_arping(&lab, VIP),
        "ARP answered for a BGP VIP on lo"
    );
    // Without the table the kernel answers (arp_ignore=0): the check above can fail.
    assert!(ip_ok(&[
        "netns",
        "exec",
        &ns,
        "nft",
        "delete",
        "table",
        "arp",
        "edgevip_bgp"
    ]));
    assert!(
        router_arping(&lab, VIP),
        "no ARP reply even without the table"
    );
    // IPv6 needs no table: ndisc answers NS only for addresses of the receiving interface,
    // so an address on lo gets no NA on the link, while the link's own address does.
    let on_lo: Ipv6Addr = "2001:db8:ffff::10".parse().unwrap();
    assert!(ip_ok(&[
        "-n",
        &ns,
        "addr",
        "add",
        "2001:db8:ffff::10/128",
        "dev",
        "lo",
        "nodad"
    ]));
    if std::path::Path::new("/usr/bin/ndisc6").exists() {
        assert!(
            router_ndisc(&lab, lab.edges[0].addr6),
            "the link address is not answered"
        );
        assert!(
            !router_ndisc(&lab, on_lo),
            "NS answered for an address on lo"
        );
    } else {
        eprintln!("bgp_daemon: ndisc6 missing; the IPv6 NS check is skipped");
    }

    // SIGKILL leaves VIP on lo; an operator's address joins it; the restart wants VIP2 only.
    d.kill();
    assert!(lo_has(&ns, VIP));
    assert!(ip_ok(&["-n", &ns, "addr", "add", OPERATOR, "dev", "lo"]));
    std::fs::write(&path, config_vips(&lab, 0, &flag, &VIP2.to_string())).unwrap();
    let d = start(&ns, &path, dir.join("edgevip2.log"));
    let ok = wait_for(Duration::from_secs(20), || {
        !lo_has(&ns, VIP) && lo_has(&ns, VIP2)
    });
    assert!(ok.is_some(), "leftover VIP not removed:\n{}", d.log());
    let lo = Command::new("ip")
        .args(["-n", &ns, "addr", "show", "dev", "lo"])
        .output()
        .unwrap();
    let lo = String::from_utf8_lossy(&lo.stdout);
    assert!(lo.contains(OPERATOR) && lo.contains("127.0.0.1/8"), "{lo}");
    let record = std::fs::read_to_string(dir.join("bgp-lo-vips")).unwrap();
    assert!(
        record.contains(&format!("{VIP2}/32")) && !record.contains(&format!("{VIP}/32")),
        "{record}"
    );
    // The restart installed the table again, for VIP2.
    let ok = wait_for(Duration::from_secs(5), || !router_arping(&lab, VIP2));
    assert!(ok.is_some(), "ARP answered for VIP2:\n{}", d.log());
}

/// Edge `i`'s config as [`config`], with a check that always passes.
fn config_always_up(lab: &BgpLab, i: usize) -> String {
    config(lab, i, Path::new("/"))
}

#[test]
fn sigkill_of_a_nodes_edgevip_and_frr_leaves_clients_a_gap_within_bfd_detection() {
    if !root_or_skip("bgp_kill") || !frr_available("bgp_kill") {
        return;
    }
    let mut lab = BgpLab::new(3).unwrap();
    lab.router_frr().apply(&lab.router_config(BFD)).unwrap();
    let mut daemons = Vec::new();
    for i in 0..3 {
        let path = lab.edges[i].frr.dir.join("edgevip.yaml");
        std::fs::write(&path, config_always_up(&lab, i)).unwrap();
        daemons.push(start(
            &lab.edges[i].ns,
            &path,
            lab.edges[i].frr.dir.join("edgevip.log"),
        ));
    }
    lab.start_responders(VIP).unwrap();
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    let peers: Vec<std::net::IpAddr> = all.iter().map(|a| std::net::IpAddr::V4(*a)).collect();
    let up = wait_for(Duration::from_secs(30), || {
        lab.router_next_hops(VIP) == all
            && lab.router_frr().speaker(&peers).is_ok_and(|s| {
                s.peers
                    .iter()
                    .all(|p| p.bfd.as_ref().is_some_and(|b| b.status == "up"))
            })
    });
    assert!(
        up.is_some(),
        "VIP not over 3 next hops with BFD up: {:?}\nedge0's log:\n{}",
        lab.router_next_hops(VIP),
        daemons[0].log()
    );

    // 4 client threads of short TCP connections (100 ms connect/answer timeout) for 3 s;
    // edge 1 dies 0.7 s in: silent (its packets dropped, link up, so only BFD can tell
    // the router), its edgevip and FRR SIGKILLed.
    let target = std::net::SocketAddr::new(VIP.into(), edgevip_lab::bgp::RESPONDER_PORT);
    let (origin, probe) = edgevip_lab::bgp::probe_connections(
        &lab.client_ns,
        target,
        4,
        Duration::from_millis(3000),
        Duration::from_millis(100),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let event = origin.elapsed();
    let t0 = Instant::now();
    lab.freeze(1).unwrap();
    daemons[1].kill();
    lab.edges[1].frr.kill();
    let killed = t0.elapsed();
    let want = vec![all[0], all[2]];
    let gone = wait_for(Duration::from_secs(10), || {
        lab.router_next_hops(VIP) == want
    })
    .map(|d| d + killed);
    let attempts = probe.join().unwrap();
    let gap = edgevip_lab::bgp::client_gap(&attempts, event);
    eprintln!(
        "bgp_kill: dead next hop out of the router's table {gone:?} after the failure (the \
         kills took {killed:?}); client: {gap:?}"
    );
    assert!(
        gone.is_some(),
        "router still has {:?} 10 s after the kill",
        lab.router_next_hops(VIP)
    );
    assert_eq!(gap.failed_before, 0, "failures before the kill: {gap:?}");
    // The kill must have been seen: some flows hashed to the dead node and failed, and
    // the client kept connecting after it (otherwise the bound below proves nothing).
    assert!(gap.failed > 0 && gap.attempts > 100, "{gap:?}");
    // BFD 100 ms x 3 = 300 ms detection; 1 s on a loaded 2-core machine.
    assert!(
        gap.outage < Duration::from_secs(1),
        "new connections failed for {:?} after the kill: {gap:?}",
        gap.outage
    );
    let c = lab.connect_many(VIP, 60).unwrap();
    assert_eq!(c.failed, 0, "{c:?}");
    assert!(!c.answers.contains_key("edge1"), "{c:?}");
}
