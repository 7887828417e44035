//! LoadBalancer Services at scale (issue 12, "How it is shown"), the short form of
//! `bench/kubernetes --services`: three nodes in LoadBalancer mode, 200 Services created
//! through the API in parallel; all get their status within a generous bound, every Service
//! VIP gets exactly one master, and each node stays within 64 MiB. The spread of masters
//! over the nodes (max/min ≤ 1.5) is checked when `EDGEVIP_CHECK_LB_SPREAD=1`. Skipped
//! unless root.

use std::time::{Duration, Instant};

use edgevip_lab::KubeLab;
use edgevip_lab::services::{lb_service, names, spread};
use serde_json::json;

const SERVICES: usize = 200;
const POOL: &str = "203.0.113.0/24";
const NODES: [usize; 3] = [0, 1, 2];
/// Off until the Service VIPs are spread over several VRRP instances.
const CHECK_SPREAD: &str = "EDGEVIP_CHECK_LB_SPREAD";

#[test]
fn two_hundred_load_balancers_get_status_and_one_master_each() {
    let Some(mut k) = KubeLab::new("kube_lb_scale", 3, env!("CARGO_BIN_EXE_edgevip")) else {
        return;
    };
    k.set_configmap(json!({}));
    for i in NODES {
        k.start_node(
            i,
            &[
                "--advert-interval",
                "100ms",
                "--load-balancers",
                "--address-pool",
                POOL,
            ],
        );
    }
    k.wait_ready(Duration::from_secs(15));
    let svcs = names(0, SERVICES);
    let t = Instant::now();
    let objects: Vec<_> = svcs.iter().map(|n| lb_service(n, None)).collect();
    k.create_services(&objects, 16);
    // Target 2 s for 1,000 in a release build (bench/kubernetes); a debug build on a
    // shared machine gets 10x.
    let took = k.wait_recorded(&svcs, t, Duration::from_millis(20), Duration::from_secs(20));
    let Some(took) = took else {
        panic!(
            "status written for {} of {SERVICES} after 20 s\n{}",
            k.recorded_count(&svcs),
            k.cluster.logs()
        );
    };
    eprintln!("{SERVICES} Services: status written for all {took:?} after the first create");

    let (m, settled) = k.wait_mastery(
        &NODES,
        Duration::from_millis(100),
        Duration::from_secs(10),
        |m| m.settled(SERVICES),
    );
    assert!(
        settled,
        "{} Service VIPs seen, {} without a master, {} with several\n{}",
        m.vips.len(),
        m.unmastered(),
        m.contested(),
        k.cluster.logs()
    );
    let shares = m.shares(&NODES);
    let ratio = spread(&shares);
    eprintln!("masters per node {shares:?}, max/min {ratio:.2}");
    assert_eq!(shares.iter().sum::<usize>(), SERVICES);
    if std::env::var(CHECK_SPREAD).is_ok_and(|v| v == "1") {
        // Preemption by the rotated priorities may follow the first master of each instance.
        let (m, spread_out) = k.wait_mastery(
            &NODES,
            Duration::from_millis(100),
            Duration::from_secs(10),
            |m| m.settled(SERVICES) && spread(&m.shares(&NODES)) <= 1.5,
        );
        let shares = m.shares(&NODES);
        assert!(
            spread_out,
            "masters per node {shares:?}: max/min {} after 10 s more",
            spread(&shares)
        );
        eprintln!("spread: masters per node {shares:?}");
    }

    for i in NODES {
        let rss = k.rss_mib(i);
        eprintln!("node {i}: RSS {rss:.1} MiB");
        assert!(rss > 0.0, "node {i}: no edgevip process found");
        assert!(
            rss <= 64.0,
            "node {i}: RSS {rss:.1} MiB with {SERVICES} Services"
        );
    }
    assert_eq!(k.refused(), Vec::<String>::new(), "no request refused");
}
