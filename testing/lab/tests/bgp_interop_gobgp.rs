//! Interop: GoBGP (a third, independent BGP implementation, without BFD) as the router,
//! edge nodes' FRR configured by edgevip's renderer: three paths for the VIP in GoBGP's
//! RIB, a withdrawal removes one, a new VIP arrives without resetting the session. Needs
//! root, FRR and `gobgpd`; prints SKIP otherwise.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use edgevip_config::BgpRouteAttrs;
use edgevip_frr::{Route, render};
use edgevip_lab::bgp::{BgpLab, frr_available, wait_for};
use edgevip_lab::root_or_skip;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const VIP2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);

fn text(lab: &BgpLab, i: usize, vips: &[Ipv4Addr]) -> String {
    let cfg = edgevip_config::parse(&lab.edge_yaml_bfd(i, None)).unwrap();
    let routes: Vec<Route> = vips
        .iter()
        .map(|v| Route {
            addr: IpAddr::V4(*v),
            attrs: BgpRouteAttrs::default(),
        })
        .collect();
    render(&cfg.bgp.unwrap(), &routes)
}

/// Edge `i`'s view of its session with the router: (established, times established).
fn session(lab: &BgpLab, i: usize) -> (bool, u64) {
    let e = &lab.edges[i];
    let s = e.frr.frr().speaker(&[IpAddr::V4(e.router_addr)]).unwrap();
    let sess = s.peers[0].session.clone().unwrap();
    (sess.is_established(), sess.established_count)
}

#[test]
fn gobgp_router_sees_three_paths_and_follows_withdrawals() {
    if !root_or_skip("bgp_gobgp") || !frr_available("bgp_gobgp") {
        return;
    }
    if !std::path::Path::new("/usr/bin/gobgpd").exists() {
        edgevip_lab::cluster::skip("bgp_gobgp", "GoBGP not installed (apt-get install gobgpd)");
        return;
    }
    let mut lab = BgpLab::with_router(3, false).unwrap();
    lab.start_gobgp().unwrap();
    for i in 0..3 {
        lab.add_vip(i, VIP).unwrap();
        lab.edges[i]
            .frr
            .frr()
            .apply(&text(&lab, i, &[VIP]))
            .unwrap();
    }
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    let took = wait_for(Duration::from_secs(30), || lab.gobgp_next_hops(VIP) == all);
    assert!(
        took.is_some(),
        "GoBGP's paths: {:?}",
        lab.gobgp_next_hops(VIP)
    );
    eprintln!("bgp_gobgp: 3 paths for the VIP in GoBGP after {took:?}");

    // A new VIP on edge 0 without resetting its session.
    let before = session(&lab, 0);
    lab.add_vip(0, VIP2).unwrap();
    lab.edges[0]
        .frr
        .frr()
        .apply(&text(&lab, 0, &[VIP, VIP2]))
        .unwrap();
    wait_for(Duration::from_secs(10), || {
        lab.gobgp_next_hops(VIP2) == [all[0]]
    })
    .expect("the new VIP reached GoBGP");
    assert_eq!(session(&lab, 0), before, "edge0's session was reset");

    // Edge 1 withdraws.
    let t0 = Instant::now();
    lab.edges[1].frr.frr().apply(&text(&lab, 1, &[])).unwrap();
    wait_for(Duration::from_secs(10), || {
        lab.gobgp_next_hops(VIP) == [all[0], all[2]]
    })
    .expect("edge1's path withdrawn at GoBGP");
    eprintln!(
        "bgp_gobgp: withdrawal seen by GoBGP {:?} after the apply call",
        t0.elapsed()
    );
}
