//! Kubernetes mode end to end: the fake API server runs in a "control-plane" namespace on
//! the lab's bridge, edge nodes run `edgevip run --kubernetes` against it, each with a
//! stand-in ingress (`GET /healthz` on 127.0.0.1:10254) in its namespace.

mod common;

use std::time::{Duration, Instant};

use common::{API, VIP4};
use edgevip_lab::KubeLab;
use serde_json::{Value, json};

const VIP2: &str = "192.0.2.101";

fn lab(test: &str, nodes: usize) -> Option<KubeLab> {
    KubeLab::new(test, nodes, env!("CARGO_BIN_EXE_edgevip"))
}

fn transitions(k: &KubeLab, i: usize) -> u64 {
    common::status(&k.cluster, i)
        .instances
        .iter()
        .map(|s| s.transitions)
        .sum()
}

fn wait_events(k: &KubeLab, reason: &str, on: &[&str]) {
    let start = Instant::now();
    loop {
        let evs = k.api.list("events.k8s.io/v1", "Event");
        let names: Vec<&str> = evs
            .iter()
            .filter(|e| e["reason"] == reason)
            .filter_map(|e| e["regarding"]["name"].as_str())
            .collect();
        if on.iter().all(|n| names.contains(n)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no {reason} events on {on:?}: {evs:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn configmap_drives_the_vip_ingress_failure_moves_it_api_loss_changes_nothing() {
    let Some(mut k) = lab("kube_e2e", 3) else {
        return;
    };
    for i in 0..3 {
        k.start_node(i, &["--advert-interval", "100ms"]);
    }
    k.wait_ready(Duration::from_secs(15));
    assert!(k.cluster.holders(VIP4).is_empty(), "no ConfigMap, no VIP");

    // Creating the ConfigMap brings the VIP up on one node.
    let t = Instant::now();
    k.set_configmap(json!({VIP4: ""}));
    let m = k.cluster.single_holder(VIP4, None, Duration::from_secs(5));
    let created = t.elapsed();
    eprintln!("ConfigMap create -> VIP on edge-{m}: {created:?}");
    // Including single_holder's 300 ms of stability. Max of 10 runs: 711 ms; bound 3x.
    assert!(
        created < Duration::from_millis(2100),
        "took {created:?}\n{}",
        k.cluster.logs()
    );
    let before = transitions(&k, m);

    // Editing it adds a VIP without moving (or flapping) the first.
    k.set_configmap(json!({VIP4: "", VIP2: ""}));
    let took = k
        .wait_vip_local(
            m,
            VIP2.parse().unwrap(),
            Duration::from_millis(1),
            Duration::from_secs(5),
        )
        .expect("the new VIP on the master");
    eprintln!("ConfigMap edit -> new VIP on the master: {took:?}");
    // Max of 10 runs: 21 ms; bound 3x.
    assert!(
        took < Duration::from_millis(65),
        "took {took:?}\n{}",
        k.cluster.logs()
    );
    k.cluster.wait_holder(VIP2, m, Duration::from_secs(2));
    k.cluster.assert_stays(VIP4, m, Duration::from_millis(500));
    assert_eq!(
        transitions(&k, m),
        before,
        "the edit did not restart the router"
    );

    // Stopping the local ingress moves the VIPs within a second.
    k.cluster.start_probe(VIP4);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    k.stop_ingress(m);
    let n = k.cluster.sole_holder(VIP4, Some(m), Duration::from_secs(3));
    let moved = t.elapsed();
    k.cluster.wait_holder(VIP2, n, Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(200));
    let report = k.cluster.stop_probe();
    eprintln!("ingress down on edge-{m} -> VIP on edge-{n} after {moved:?}; prober: {report:?}");
    // Max of 10 runs: 356 ms; bound 1 s, 2.8x.
    assert!(
        moved < Duration::from_secs(1),
        "took {moved:?}\n{}",
        k.cluster.logs()
    );
    // The master keeps answering until it hands over: max of 10 runs: 38 ms; bound 3x.
    assert!(
        report.longest_gap < Duration::from_millis(115),
        "{report:?}\n{}",
        k.cluster.logs()
    );
    assert_eq!(common::status(&k.cluster, m).instances[0].state, "fault");
    wait_events(
        &k,
        "BecameMaster",
        &[&format!("edge-{m}"), &format!("edge-{n}")],
    );
    wait_events(&k, "Fault", &[&format!("edge-{m}")]);

    // The API server going away changes nothing.
    k.stop_api();
    k.cluster.assert_stays(VIP4, n, Duration::from_secs(3));
    assert_eq!(k.cluster.holders(VIP2), [n]);
    for i in 0..3 {
        assert_eq!(
            k.cluster.http_get(i, "/readyz").0,
            200,
            "ready on the last state"
        );
        assert_eq!(k.cluster.http_get(i, "/healthz").0, 200);
    }
    let st: Value = serde_json::from_str(&k.cluster.status_json(n, API)).unwrap();
    assert_eq!(st["kubernetes"]["synced"], true, "{st:#}");
    assert_eq!(st["kubernetes"]["interface"], "eth0");
    let (_, metrics) = k.cluster.http_get(n, "/metrics");
    for want in [
        "edgevip_kubernetes{what=\"synced\"} 1",
        "edgevip_kubernetes{what=\"edge_nodes\"} 3",
        "edgevip_health_check_up{instance=\"vips\",check=\"ingress\"} 1",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }
    // Back healthy, the old master does not take the VIP back (no preempt by default).
    k.restart_ingress(m);
    k.cluster.assert_stays(VIP4, n, Duration::from_secs(1));
}

#[test]
fn edge_nodes_join_live_and_bad_entries_are_rejected_alone() {
    let Some(mut k) = lab("kube_e2e_nodes", 3) else {
        return;
    };
    // edge-2 runs but is not an edge node yet.
    k.api.apply(k.node_object(2, false));
    k.set_configmap(json!({
        VIP4: "default/ingress:DR",
        "192.0.2.300": "",
        "edgevip.yaml": "instances:\n  - {name: web, vrid: 61, vips: [192.0.2.110/24], preempt: true}\n  - {name: broken, vrid: 0, vips: [192.0.2.111/24]}\n"
    }));
    for i in 0..3 {
        k.start_node(i, &["--advert-interval", "100ms"]);
    }
    k.wait_ready(Duration::from_secs(15));
    let m = k.cluster.single_holder(VIP4, None, Duration::from_secs(5));
    let w = k
        .cluster
        .single_holder("192.0.2.110", None, Duration::from_secs(5));
    assert!(m < 2 && w < 2);
    let s2 = common::status(&k.cluster, 2);
    assert!(s2.instances.is_empty(), "not an edge node: serves nothing");

    // edge-2 becomes an edge node: the others learn it as a peer live (else, unicast, it
    // would hear nobody and become a second master).
    k.api.apply(k.node_object(2, true));
    let start = Instant::now();
    while common::status(&k.cluster, 2).instances.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{}",
            k.cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = transitions(&k, m);
    k.cluster.assert_stays(VIP4, m, Duration::from_secs(2));
    k.cluster
        .assert_stays("192.0.2.110", w, Duration::from_millis(200));
    let s2 = common::status(&k.cluster, 2);
    assert!(
        s2.instances.iter().all(|i| i.state == "backup"),
        "{s2:#?}\n{}",
        k.cluster.logs()
    );
    assert_eq!(transitions(&k, m), t0, "joining did not disturb the master");

    // Rejected entries and the unsupported method are Events on the ConfigMap.
    let evs = k.api.list("events.k8s.io/v1", "Event");
    let notes: Vec<String> = evs
        .iter()
        .filter(|e| e["regarding"]["kind"] == "ConfigMap" && e["type"] == "Warning")
        .map(|e| format!("{}: {}", e["reason"], e["note"]))
        .collect();
    for want in ["192.0.2.300", "instances[1].vrid", "DR"] {
        assert!(
            notes.iter().any(|n| n.contains(want)),
            "no event about {want}: {notes:#?}"
        );
    }
    // The original nodes stop: the VIPs go to the node that joined live.
    assert_eq!(k.cluster.term(0), Some(0));
    assert_eq!(k.cluster.term(1), Some(0));
    k.cluster.wait_holder(VIP4, 2, Duration::from_secs(3));
    k.cluster
        .wait_holder("192.0.2.110", 2, Duration::from_secs(3));
}
