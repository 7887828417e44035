//! One LoadBalancer allocator, elected by a Lease (issue 12 item 3), end to end: three
//! nodes in LoadBalancer mode, the pod holding the Lease is killed, another takes the Lease
//! within its duration (3 s here) plus a renewal period, no allocation changes, and a
//! Service created afterwards is allocated by the new holder. Skipped unless root.

use std::time::{Duration, Instant};

mod common;

use common::{lb_service, recorded, wait};
use edgevip_lab::KubeLab;
use serde_json::json;

const POOL: &str = "192.0.2.200-192.0.2.210";
const LEASE_SECS: u64 = 3;

fn holder(k: &KubeLab) -> Option<String> {
    let l = k.api.get(
        "coordination.k8s.io/v1",
        "Lease",
        Some("edgevip"),
        "edgevip-allocator",
    )?;
    l["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Polls `f` every 50 ms until it gives `Some`, at most `secs`.
#[test]
fn a_killed_allocator_is_replaced_and_no_allocation_changes() {
    let Some(mut k) = KubeLab::new("kube_allocator", 3, env!("CARGO_BIN_EXE_edgevip")) else {
        return;
    };
    k.set_configmap(json!({}));
    let lease = format!("{LEASE_SECS}s");
    for i in 0..3 {
        k.start_node(
            i,
            &[
                "--advert-interval",
                "100ms",
                "--load-balancers",
                "--address-pool",
                POOL,
                "--lease-duration",
                &lease,
            ],
        );
    }
    k.wait_ready(Duration::from_secs(15));
    for name in ["a", "b", "c"] {
        k.api.apply(lb_service(name, None));
    }
    let before: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| wait(&k, "status written", 10, || recorded(&k, n)))
        .collect();
    let first = wait(&k, "a Lease holder", 5, || holder(&k));
    let i: usize = (0..3)
        .find(|i| KubeLab::node_name(*i) == first)
        .expect("the holder is a node");
    // Exactly one pod says it allocates.
    let allocators: Vec<f64> = (0..3)
        .map(|n| {
            k.cluster
                .metric(n, "edgevip_kubernetes{what=\"allocator\"}")
        })
        .collect();
    assert_eq!(allocators.iter().sum::<f64>(), 1.0, "{allocators:?}");
    assert_eq!(allocators[i], 1.0);

    k.cluster.kill(i);
    let killed = Instant::now();
    let next = wait(&k, "another holder", 2 * LEASE_SECS + 2, || {
        holder(&k).filter(|h| *h != first)
    });
    let took = killed.elapsed();
    eprintln!("allocator Lease moved from {first} to {next} {took:?} after the kill");
    assert!(
        took <= Duration::from_secs(LEASE_SECS) + Duration::from_millis(2_500),
        "within the duration and a renewal period: {took:?}"
    );
    let after: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| recorded(&k, n).unwrap_or_default())
        .collect();
    assert_eq!(after, before, "no allocation changed");
    // The new holder allocates.
    k.api.apply(lb_service("d", None));
    let d = wait(&k, "the new holder writes", 5, || recorded(&k, "d"));
    assert!(!before.contains(&d), "{d} is free: {before:?}");
    assert_eq!(k.refused(), Vec::<String>::new(), "no request refused");
}
