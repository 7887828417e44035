//! Interop: BIRD 2 (an independent BGP and BFD implementation) as the router, edge nodes'
//! FRR configured by edgevip's renderer. The same checks as with an FRR router: the VIP
//! over three next hops in the kernel, every node reached, a silently dead node out within
//! BFD's detection time. Needs root, FRR and `bird2`; prints SKIP otherwise.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use edgevip_config::BgpRouteAttrs;
use edgevip_frr::{Route, render};
use edgevip_lab::bgp::{BgpLab, frr_available, wait_for};
use edgevip_lab::root_or_skip;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const BFD: Duration = Duration::from_millis(100);

#[test]
fn bird_router_spreads_over_three_edges_and_bfd_removes_a_dead_one() {
    if !root_or_skip("bgp_bird") || !frr_available("bgp_bird") {
        return;
    }
    if !std::path::Path::new("/usr/sbin/bird").exists() {
        edgevip_lab::cluster::skip("bgp_bird", "BIRD 2 not installed (apt-get install bird2)");
        return;
    }
    let mut lab = BgpLab::with_router(3, false).unwrap();
    lab.start_bird(BFD).unwrap();
    for i in 0..3 {
        lab.add_vip(i, VIP).unwrap();
        let cfg = edgevip_config::parse(&lab.edge_yaml(i, BFD)).unwrap();
        let text = render(
            &cfg.bgp.unwrap(),
            &[Route {
                addr: IpAddr::V4(VIP),
                attrs: BgpRouteAttrs::default(),
            }],
        );
        lab.edges[i].frr.frr().apply(&text).unwrap();
    }
    lab.start_responders(VIP).unwrap();
    let all: Vec<Ipv4Addr> = lab.edges.iter().map(|e| e.addr).collect();
    let took = wait_for(Duration::from_secs(20), || {
        lab.router_next_hops(VIP) == all
            && lab.edges.iter().all(|e| {
                e.frr
                    .frr()
                    .speaker(&[IpAddr::V4(e.router_addr)])
                    .is_ok_and(|s| s.peers[0].bfd.as_ref().is_some_and(|b| b.status == "up"))
            })
    });
    assert!(
        took.is_some(),
        "BIRD's kernel table: {:?}; BIRD's log:\n{}\nedge0 sees {:?}",
        lab.router_next_hops(VIP),
        lab.bird_log(),
        lab.edges[0]
            .frr
            .frr()
            .speaker(&[IpAddr::V4(lab.edges[0].router_addr)])
    );
    eprintln!("bgp_bird: VIP over 3 next hops and BFD up after {took:?}");
    let c = lab.connect_many(VIP, 300).unwrap();
    eprintln!(
        "bgp_bird: 300 connections: {:?}, {} failed",
        c.answers, c.failed
    );
    assert_eq!((c.answers.len(), c.failed), (3, 0), "{c:?}");

    lab.freeze(2).unwrap();
    let t0 = Instant::now();
    let want = vec![all[0], all[1]];
    let mut gone = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if lab.router_next_hops(VIP) == want {
            gone = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone = gone.expect("BIRD removed the dead node's next hop");
    eprintln!("bgp_bird: dead node out of BIRD's kernel table after {gone:?} (BFD 100 ms x 3)");
    assert!(gone < Duration::from_millis(1500), "{gone:?}");
}
