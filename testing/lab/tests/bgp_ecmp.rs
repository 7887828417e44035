//! The BGP mode's routed lab with FRR on every node: edge nodes' FRR configured by
//! edgevip's renderer and adapter (`edgevip-frr`), a router running FRR as the fabric.
//! Needs root and Debian's `frr` + `frr-pythontools`; prints SKIP otherwise.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use edgevip_config::BgpRouteAttrs;
use edgevip_frr::{Route, render};
use edgevip_lab::bgp::{BgpLab, frr_available, wait_for};
use edgevip_lab::root_or_skip;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const VIP2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
const BFD: Duration = Duration::from_millis(100);

fn routes(vips: &[Ipv4Addr]) -> Vec<Route> {
    vips.iter()
        .map(|v| Route {
            addr: IpAddr::V4(*v),
            attrs: BgpRouteAttrs::default(),
        })
        .collect()
}

/// Edge `i`'s rendered `frr.conf` announcing `vips`.
fn edge_text(lab: &BgpLab, i: usize, vips: &[Ipv4Addr]) -> String {
    let cfg = edgevip_config::parse(&lab.edge_yaml(i, BFD)).unwrap();
    render(&cfg.bgp.unwrap(), &routes(vips))
}

/// The router's view of edge `i`'s session: (established, uptime, times established).
fn router_session(lab: &BgpLab, i: usize) -> Option<(bool, Option<Duration>, u64)> {
    let s = lab
        .router_frr()
        .speaker(&[IpAddr::V4(lab.edges[i].addr)])
        .ok()?;
    let sess = s.peers[0].session.clone()?;
    Some((sess.is_established(), sess.uptime, sess.established_count))
}

/// One lab at a time: two labs' FRRs and clients on 2 shared cores skew the timings.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Three edges announcing `VIP`, responders up; sessions not waited for yet.
fn announced_lab() -> BgpLab {
    let mut lab = BgpLab::new(3).unwrap();
    lab.router_frr()
        .apply(&lab.router_config(BFD))
        .expect("router config");
    for i in 0..3 {
        lab.add_vip(i, VIP).unwrap();
        lab.edges[i]
            .frr
            .frr()
            .apply(&edge_text(&lab, i, &[VIP]))
            .unwrap_or_else(|e| panic!("edge{i}: {e}"));
    }
    lab.start_responders(VIP).unwrap();
    lab
}

#[test]
fn bfd_takes_a_dead_node_out_within_the_detection_time() {
    if !root_or_skip("bgp_bfd") || !frr_available("bgp_bfd") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let lab = announced_lab();
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    wait_for(Duration::from_secs(30), || {
        lab.router_next_hops(VIP) == all
            && lab
                .router_frr()
                .speaker(&all.iter().map(|a| IpAddr::V4(*a)).collect::<Vec<_>>())
                .is_ok_and(|s| {
                    s.peers
                        .iter()
                        .all(|p| p.bfd.as_ref().is_some_and(|b| b.status == "up"))
                })
    })
    .expect("3 next hops and BFD up");
    // Edge 2 dies silently (hold time 9 s: only BFD can be this fast).
    lab.freeze(2).unwrap();
    let t0 = Instant::now();
    let want = vec![all[0], all[1]];
    let mut took = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if lab.router_next_hops(VIP) == want {
            took = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = took.expect("the dead node's next hop removed within 10 s");
    eprintln!(
        "bgp_bfd: dead node out of the router's table after {took:?} (BFD {BFD:?} x 3 = 300 ms detection)"
    );
    // Detection 300 ms, plus bgpd and zebra's work and this loop's polling.
    assert!(took < Duration::from_millis(1500), "{took:?}");
    let c = lab.connect_many(VIP, 100).unwrap();
    assert_eq!(c.failed, 0, "{c:?}");
    assert!(!c.answers.contains_key("edge2"));
}

#[test]
fn three_edges_announce_one_vip_and_the_router_spreads_over_all() {
    if !root_or_skip("bgp_ecmp") || !frr_available("bgp_ecmp") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let lab = announced_lab();

    // Sessions up and BFD up, as the edges' adapter reads them back.
    let took = wait_for(Duration::from_secs(30), || {
        lab.edges.iter().all(|e| {
            e.frr
                .frr()
                .speaker(&[IpAddr::V4(e.router_addr)])
                .is_ok_and(|s| {
                    let p = &s.peers[0];
                    p.session.as_ref().is_some_and(|s| s.is_established())
                        && p.bfd.as_ref().is_some_and(|b| b.status == "up")
                        && p.advertised == ["203.0.113.10/32"]
                })
        })
    })
    .unwrap_or_else(|| {
        let s = lab.edges[0]
            .frr
            .frr()
            .speaker(&[IpAddr::V4(lab.edges[0].router_addr)]);
        panic!("sessions not up in 30 s; edge0 sees {s:?}");
    });
    eprintln!("bgp_ecmp: 3 sessions established, BFD up, VIP advertised after {took:?}");
    let e0 = lab.edges[0]
        .frr
        .frr()
        .speaker(&[IpAddr::V4(lab.edges[0].router_addr)])
        .unwrap();
    let bfd = e0.peers[0].bfd.clone().unwrap();
    assert_eq!(
        (bfd.transmit_interval, bfd.multiplier),
        (Some(BFD), Some(3)),
        "the rendered BFD profile is in force"
    );

    // The router's kernel table: the VIP over three next hops.
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    wait_for(Duration::from_secs(10), || lab.router_next_hops(VIP) == all).unwrap_or_else(|| {
        panic!(
            "router next hops {:?}, want {all:?}",
            lab.router_next_hops(VIP)
        )
    });

    // Layer-4 hashing: many connections (new source port each) reach every node.
    let c = lab.connect_many(VIP, 300).unwrap();
    eprintln!(
        "bgp_ecmp: 300 connections through the VIP: {:?}, {} failed",
        c.answers, c.failed
    );
    assert_eq!(c.failed, 0);
    assert_eq!(c.answers.len(), 3, "{c:?}");
    assert!(c.answers.values().all(|&n| n >= 30), "lopsided: {c:?}");

    // Re-applying the same text changes nothing (no line for frr-reload to send).
    let same = edge_text(&lab, 0, &[VIP]);
    let pending = lab.edges[0].frr.frr().pending(&same).unwrap();
    let changes: Vec<&str> = pending_lines(&pending);
    assert!(
        changes.is_empty(),
        "an unchanged config still differs: {changes:?}"
    );

    // A new VIP on edge 0: announced without resetting any session (the router's session
    // uptime keeps counting, the establish count stays).
    let before: Vec<_> = (0..3).map(|i| router_session(&lab, i).unwrap()).collect();
    lab.add_vip(0, VIP2).unwrap();
    let t0 = Instant::now();
    lab.edges[0]
        .frr
        .frr()
        .apply(&edge_text(&lab, 0, &[VIP, VIP2]))
        .unwrap();
    let applied = t0.elapsed();
    let seen = wait_for(Duration::from_secs(10), || {
        lab.router_next_hops(VIP2) == [lab.edges[0].addr]
    })
    .expect("the new VIP reached the router");
    eprintln!(
        "bgp_ecmp: new VIP: frr-reload took {applied:?}, in the router's table {:?} after",
        applied + seen
    );
    std::thread::sleep(Duration::from_millis(1100));
    for (i, b) in before.iter().enumerate() {
        let a = router_session(&lab, i).unwrap();
        assert!(a.0, "edge{i}'s session went down");
        assert_eq!(a.2, b.2, "edge{i}'s session was re-established (reset)");
        assert!(
            a.1 > b.1,
            "edge{i}'s uptime restarted: {:?} -> {:?}",
            b.1,
            a.1
        );
    }

    // Withdrawal: edge 1 stops announcing; the router keeps two next hops.
    let t0 = Instant::now();
    lab.edges[1]
        .frr
        .frr()
        .apply(&edge_text(&lab, 1, &[]))
        .unwrap();
    let want = vec![lab.edges[0].addr, lab.edges[2].addr];
    let gone = wait_for(Duration::from_secs(10), || {
        lab.router_next_hops(VIP) == want
    })
    .expect("edge1's next hop withdrawn");
    eprintln!(
        "bgp_ecmp: withdrawal in the router's table {:?} after the apply call",
        t0.elapsed()
    );
    let _ = gone;
    let s1 = lab.edges[1]
        .frr
        .frr()
        .speaker(&[IpAddr::V4(lab.edges[1].router_addr)])
        .unwrap();
    assert!(s1.advertises_nothing(), "{s1:?}");
    let c = lab.connect_many(VIP, 100).unwrap();
    assert_eq!(c.failed, 0);
    assert!(!c.answers.contains_key("edge1"), "{c:?}");
}

/// The lines frr-reload would send, from `--test` output ("Lines To Delete" / "Lines To
/// Add" sections), without the hostname vtysh always reports as its own.
fn pending_lines(out: &str) -> Vec<&str> {
    out.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Lines To")
                && !l.starts_with("===")
                && !l.contains("hostname")
        })
        .collect()
}

#[test]
fn ipv6_vips_go_over_ipv6_peers_beside_ipv4() {
    if !root_or_skip("bgp_ipv6") || !frr_available("bgp_ipv6") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let vip6: std::net::Ipv6Addr = "2001:db8:ffff::10".parse().unwrap();
    let lab = BgpLab::new(3).unwrap();
    lab.router_frr().apply(&lab.router_config(BFD)).unwrap();
    for i in 0..3 {
        lab.add_vip(i, VIP).unwrap();
        lab.add_vip6(i, vip6).unwrap();
        let cfg = edgevip_config::parse(&lab.edge_yaml_dual(i, BFD)).unwrap();
        let routes = vec![
            Route {
                addr: IpAddr::V4(VIP),
                attrs: BgpRouteAttrs::default(),
            },
            Route {
                addr: IpAddr::V6(vip6),
                attrs: BgpRouteAttrs::default(),
            },
        ];
        lab.edges[i]
            .frr
            .frr()
            .apply(&render(&cfg.bgp.unwrap(), &routes))
            .unwrap_or_else(|e| panic!("edge{i}: {e}"));
    }
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    let took = wait_for(Duration::from_secs(30), || {
        lab.router_paths6(vip6) == 3 && lab.router_next_hops(VIP) == all
    });
    let e0 = &lab.edges[0];
    assert!(
        took.is_some(),
        "router: {} IPv6 paths, IPv4 {:?}; edge0 sees {:?}",
        lab.router_paths6(vip6),
        lab.router_next_hops(VIP),
        e0.frr
            .frr()
            .speaker(&[IpAddr::V4(e0.router_addr), IpAddr::V6(e0.router_addr6)])
    );
    eprintln!("bgp_ipv6: /32 and /128 over 3 next hops each after {took:?}");
    // Each peer is advertised its own family only.
    let s = e0
        .frr
        .frr()
        .speaker(&[IpAddr::V4(e0.router_addr), IpAddr::V6(e0.router_addr6)])
        .unwrap();
    assert_eq!(s.peers[0].advertised, ["203.0.113.10/32"]);
    assert_eq!(s.peers[1].advertised, ["2001:db8:ffff::10/128"]);
}
