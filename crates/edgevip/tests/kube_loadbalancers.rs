//! LoadBalancer Services end to end on the lab: real edge nodes in LoadBalancer mode
//! against the fake API server. One address per IP family, shared IPs, externalTrafficPolicy
//! Local eligibility, VIPPools read live, and the spread of the VIPs over the nodes (one
//! VRRP instance per VRID) with a node killed. Skipped unless root.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

mod common;

use common::{ingress, lb_service, lb_service_in, recorded, service_events, wait};
use edgevip_lab::KubeLab;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_edgevip");
const POOL4: &str = "192.0.2.200-192.0.2.211";

/// Empty ConfigMap, nodes 0..n in LoadBalancer mode with 100 ms adverts and `extra`
/// arguments, all ready.
fn start(k: &mut KubeLab, extra: &[&str]) {
    k.set_configmap(json!({}));
    let mut args = vec!["--advert-interval", "100ms", "--load-balancers"];
    args.extend_from_slice(extra);
    for i in 0..k.nodes {
        k.start_node(i, &args);
    }
    k.wait_ready(Duration::from_secs(15));
}

/// Probes `vip` from the client for `dur`: the report (answers, gap) of a VIP at rest.
fn probe_for(k: &mut KubeLab, vip: &str, dur: Duration) -> edgevip_lab::ProbeReport {
    k.cluster.start_probe(vip);
    std::thread::sleep(dur);
    k.cluster.stop_probe()
}

#[test]
fn a_dual_stack_service_gets_an_address_of_each_family_both_served() {
    let Some(mut k) = KubeLab::dual_stack("kube_lb_dual", 2, BIN) else {
        return;
    };
    start(
        &mut k,
        &[
            "--address-pool",
            "192.0.2.200-192.0.2.210,2001:db8::200-2001:db8::210",
        ],
    );
    let mut s = lb_service("dual", None);
    s["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    s["spec"]["ipFamilies"] = json!(["IPv4", "IPv6"]);
    let t = Instant::now();
    k.api.apply(s);
    let ips = wait(&k, "an address of each family recorded", 10, || {
        let v = ingress(&k, "web", "dual");
        (v.len() == 2).then_some(v)
    });
    let ips: Vec<IpAddr> = ips.iter().map(|a| a.parse().expect("an address")).collect();
    let v4 = ips.iter().find(|a| a.is_ipv4()).expect("an IPv4 address");
    let v6 = ips.iter().find(|a| a.is_ipv6()).expect("an IPv6 address");
    assert!(
        ips[0].is_ipv4(),
        "the first entry is of the first family: {ips:?}"
    );
    let (v4, v6) = (v4.to_string(), v6.to_string());
    let h4 = k.cluster.single_holder(&v4, None, Duration::from_secs(5));
    let h6 = k.cluster.single_holder(&v6, None, Duration::from_secs(5));
    eprintln!(
        "dual-stack: {v4} on edge-{h4}, {v6} on edge-{h6}, both held {:?} after the create",
        t.elapsed()
    );
    // Each family's router hears the other node's adverts: the other node is backup
    // (with Nodes listing no IPv6 InternalIP, both were master of the IPv6 VIP).
    for (vip, h) in [(&v4, h4), (&v6, h6)] {
        let other = 1 - h;
        let inst = instance_of(&k, other, vip);
        assert_eq!(inst.state, "backup", "edge-{other} for {vip}: {inst:?}");
    }
    for (vip, h) in [(&v4, h4), (&v6, h6)] {
        let r = probe_for(&mut k, vip, Duration::from_millis(500));
        eprintln!("probe {vip}: {r:?}");
        assert!(
            r.received > 0 && r.answered_by.get(h).copied().unwrap_or(0) == r.received,
            "{vip} answered by edge-{h} only: {r:?}\n{}",
            k.cluster.logs()
        );
    }
    assert_eq!(k.refused(), Vec::<String>::new(), "no request refused");
}

/// A Service `<ns>/<name>` with one port and the sharing key `dns`.
fn shared(ns: &str, name: &str, port: u16, proto: &str) -> Value {
    let mut s = lb_service_in(ns, name, &[(port, proto)]);
    s["metadata"]["annotations"] = json!({"edgevip.io/allow-shared-ip": "dns"});
    s
}

/// The single address recorded for `<ns>/<name>`, waited for.
fn recorded_in(k: &KubeLab, ns: &str, name: &str) -> String {
    wait(k, &format!("{ns}/{name} recorded"), 10, || {
        let v = ingress(k, ns, name);
        (v.len() == 1).then(|| v[0].clone())
    })
}

#[test]
fn services_with_one_sharing_key_share_an_ip_unless_ports_or_namespace_differ() {
    let Some(mut k) = KubeLab::new("kube_lb_share", 2, BIN) else {
        return;
    };
    start(&mut k, &["--address-pool", POOL4]);
    k.api.apply(shared("web", "dns-tcp", 53, "TCP"));
    k.api.apply(shared("web", "dns-udp", 53, "UDP"));
    let tcp = recorded_in(&k, "web", "dns-tcp");
    let udp = recorded_in(&k, "web", "dns-udp");
    assert_eq!(tcp, udp, "53/TCP and 53/UDP share one IP");
    let h = k.cluster.single_holder(&tcp, None, Duration::from_secs(5));
    let r = probe_for(&mut k, &tcp, Duration::from_millis(300));
    assert!(r.received > 0, "{tcp} served by edge-{h}: {r:?}");

    // The same key, but 53/TCP again: a different IP.
    k.api.apply(shared("web", "dns-clash", 53, "TCP"));
    let clash = recorded_in(&k, "web", "dns-clash");
    // The same key in another namespace: a different IP.
    k.api.apply(shared("apps", "dns-other", 53, "TCP"));
    let other = recorded_in(&k, "apps", "dns-other");
    eprintln!("shared {tcp}; clashing port: {clash}; other namespace: {other}");
    assert_ne!(clash, tcp, "a clashing port does not share");
    assert_ne!(other, tcp, "another namespace does not share");
    assert_ne!(other, clash, "another namespace does not share");
    for vip in [&clash, &other] {
        k.cluster.single_holder(vip, None, Duration::from_secs(5));
    }
    // Still one IP for the first two.
    assert_eq!(ingress(&k, "web", "dns-udp"), std::slice::from_ref(&tcp));
    assert_eq!(k.refused(), Vec::<String>::new(), "no request refused");
}

/// The instance of node `i` carrying `vip`, from its /status.
fn instance_of(k: &KubeLab, i: usize, vip: &str) -> edgevip::status::InstanceStatus {
    let st = common::status(&k.cluster, i);
    st.instances
        .into_iter()
        .find(|s| s.vips.iter().any(|v| v.split('/').next() == Some(vip)))
        .unwrap_or_else(|| panic!("no instance of edge-{i} carries {vip}"))
}

#[test]
fn external_traffic_policy_local_follows_the_ready_endpoint() {
    let Some(mut k) = KubeLab::new("kube_lb_local", 3, BIN) else {
        return;
    };
    start(&mut k, &["--address-pool", POOL4]);
    k.set_endpoints_on_nodes("web", "local", &[0]);
    let mut s = lb_service("local", None);
    s["spec"]["externalTrafficPolicy"] = json!("Local");
    k.api.apply(s);
    let vip = wait(&k, "status written", 10, || recorded(&k, "local"));
    k.cluster.wait_holder(&vip, 0, Duration::from_secs(5));
    k.cluster.assert_stays(&vip, 0, Duration::from_millis(500));
    for i in [1, 2] {
        let inst = instance_of(&k, i, &vip);
        assert_eq!(inst.state, "fault", "edge-{i}: {inst:?}");
        assert!(
            inst.ineligible
                .as_deref()
                .is_some_and(|w| w.contains("externalTrafficPolicy: Local")),
            "edge-{i}: {inst:?}"
        );
    }

    // The endpoint moves to edge-1: so does the VIP.
    k.cluster.start_probe(&vip);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    k.set_endpoints_on_nodes("web", "local", &[1]);
    let n = k.cluster.sole_holder(&vip, Some(0), Duration::from_secs(3));
    let moved = t.elapsed();
    k.cluster.wait_holder(&vip, 1, Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(300));
    let report = k.cluster.stop_probe();
    eprintln!(
        "endpoint edge-0 -> edge-1: VIP on edge-{n} after {moved:?}; longest gap {:?}; {report:?}",
        report.longest_gap
    );
    assert_eq!(n, 1, "the VIP went to the node with the endpoint");
    // The old master goes to fault (priority 0 advert) as the new one becomes eligible: at
    // worst a Master_Down_Interval (3 x 100 ms + skew) after both saw the slice.
    assert!(
        report.longest_gap < Duration::from_secs(1),
        "gap {:?}\n{}",
        report.longest_gap,
        k.cluster.logs()
    );
    assert!(
        report.answered_by.get(1).is_some_and(|a| *a > 0),
        "{report:?}"
    );
    for i in [0, 2] {
        assert_eq!(instance_of(&k, i, &vip).state, "fault", "edge-{i}");
    }

    // No endpoint left: no node holds the VIP, and the Service says so.
    let t = Instant::now();
    k.set_endpoints_on_nodes("web", "local", &[]);
    wait(&k, "the VIP released everywhere", 3, || {
        k.cluster.holders(&vip).is_empty().then_some(())
    });
    eprintln!("no endpoint: VIP released after {:?}", t.elapsed());
    let notes = wait(&k, "a VIPWarning Event", 5, || {
        let n = service_events(&k, "VIPWarning", "web", "local");
        (!n.is_empty()).then_some(n)
    });
    eprintln!("VIPWarning: {notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("held by no node")),
        "{notes:?}"
    );
    k.cluster.assert_unheld(&vip, Duration::from_millis(500));
    assert_eq!(k.refused(), Vec::<String>::new(), "no request refused");
}

fn vippool(addresses: &[&str]) -> Value {
    json!({"apiVersion": "edgevip.io/v1alpha1", "kind": "VIPPool",
        "metadata": {"name": "lab"},
        "spec": {"addresses": addresses, "autoAssign": true}})
}

/// The VIPPool `lab`'s status (allocated, free) once it is `want`, waited for.
fn wait_pool_status(k: &KubeLab, want: (u64, u64)) {
    wait(k, &format!("VIPPool status {want:?}"), 5, || {
        let p = k.api.get("edgevip.io/v1alpha1", "VIPPool", None, "lab")?;
        let got = (
            p["status"]["allocated"].as_u64()?,
            p["status"]["free"].as_u64()?,
        );
        (got == want).then_some(())
    });
}

#[test]
fn a_vippool_is_read_live_exhausted_then_grown_without_a_restart() {
    let Some(mut k) = KubeLab::new("kube_lb_vippool", 2, BIN) else {
        return;
    };
    let crd: Value = serde_saphyr::from_str(include_str!("../../../deploy/crds/vippool.yaml"))
        .expect("deploy/crds/vippool.yaml");
    k.api.apply(crd);
    start(&mut k, &[]);
    k.api.apply(vippool(&["192.0.2.220"]));
    k.api.apply(lb_service("first", None));
    let a = wait(&k, "first recorded", 10, || recorded(&k, "first"));
    assert_eq!(a, "192.0.2.220");
    k.api.apply(lb_service("second", None));
    let notes = wait(&k, "a NoVIP Event on second", 10, || {
        let n = service_events(&k, "NoVIP", "web", "second");
        (!n.is_empty()).then_some(n)
    });
    eprintln!("NoVIP: {notes:?}");
    assert!(notes.iter().any(|n| n.contains("exhausted")), "{notes:?}");
    assert_eq!(recorded(&k, "second"), None);
    wait_pool_status(&k, (1, 0));

    let t = Instant::now();
    k.api.apply(vippool(&["192.0.2.220", "192.0.2.221"]));
    let b = wait(&k, "second recorded", 10, || recorded(&k, "second"));
    let took = t.elapsed();
    assert_eq!(b, "192.0.2.221");
    let h = k.cluster.single_holder(&b, None, Duration::from_secs(5));
    eprintln!(
        "VIPPool edit -> second's status {took:?}, held by edge-{h} {:?} after the edit",
        t.elapsed()
    );
    // The pool is watched: the edit reaches the allocator at once, not on a resync.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    wait_pool_status(&k, (2, 0));
    assert_eq!(recorded(&k, "first").as_deref(), Some("192.0.2.220"));
    assert_eq!(k.refused(), Vec::<String>::new(), "no request refused");
}

/// Per node, the VIPs of its `lb-` instances in state master (from its /status).
fn masters(k: &KubeLab, nodes: &[usize]) -> BTreeMap<usize, Vec<String>> {
    nodes
        .iter()
        .map(|i| {
            let vips = common::status(&k.cluster, *i)
                .instances
                .into_iter()
                .filter(|s| s.name.starts_with("lb-") && s.state == "master")
                .flat_map(|s| s.vips)
                .map(|v| v.split('/').next().unwrap_or_default().to_string())
                .collect();
            (*i, vips)
        })
        .collect()
}

#[test]
fn vips_spread_over_the_nodes_and_only_a_killed_nodes_vips_move() {
    let Some(mut k) = KubeLab::new("kube_lb_spread", 3, BIN) else {
        return;
    };
    // The default --preempt=false (the ConfigMap VIPs'): LoadBalancer instances preempt
    // anyway, or the first node to start an instance would keep it whatever its priority
    // (Skew_Time separates neighbouring priorities by 4 ms, less than the nodes' start-up
    // spread: [4, 0, 8], [0, 9, 3], [12, 0, 0] masters per node were measured so).
    start(&mut k, &["--address-pool", POOL4]);
    let names: Vec<String> = (0..12).map(|n| format!("s{n:02}")).collect();
    for n in &names {
        k.api.apply(lb_service(n, None));
    }
    let vips: Vec<String> = names
        .iter()
        .map(|n| wait(&k, "status written", 10, || recorded(&k, n)))
        .collect();
    // Every VIP held by exactly one node, and that node's /status says master for it.
    let start_t = Instant::now();
    let before: BTreeMap<String, usize> = loop {
        let m = masters(&k, &[0, 1, 2]);
        let holders: BTreeMap<String, Vec<usize>> = vips
            .iter()
            .map(|v| (v.clone(), k.cluster.holders(v)))
            .collect();
        let settled = holders.iter().all(|(v, h)| {
            h.len() == 1
                && m[&h[0]].contains(v)
                && m.values().flatten().filter(|x| *x == v).count() == 1
        });
        if settled {
            break holders.into_iter().map(|(v, h)| (v, h[0])).collect();
        }
        assert!(
            start_t.elapsed() < Duration::from_secs(10),
            "not settled: holders {holders:?}, masters {m:?}\n{}",
            k.cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let per_node: Vec<usize> = (0..3)
        .map(|i| before.values().filter(|h| **h == i).count())
        .collect();
    eprintln!("spread of 12 VIPs over 3 nodes: {per_node:?}; {before:?}");
    let (max, min) = (
        *per_node.iter().max().unwrap(),
        *per_node.iter().min().unwrap(),
    );
    assert!(
        min > 0 && max <= 2 * min,
        "masters per node {per_node:?}\n{}",
        k.cluster.logs()
    );

    // SIGKILL the node with the most: its VIPs move, the others stay where they are.
    let dead = (0..3).find(|i| per_node[*i] == max).unwrap();
    let moving: Vec<&String> = before
        .iter()
        .filter(|(_, h)| **h == dead)
        .map(|(v, _)| v)
        .collect();
    let t = Instant::now();
    k.cluster.kill(dead);
    let live = |v: &str| -> Vec<usize> {
        k.cluster
            .holders(v)
            .into_iter()
            .filter(|h| *h != dead)
            .collect()
    };
    let all_held = loop {
        for (v, h) in before.iter().filter(|(_, h)| **h != dead) {
            assert_eq!(
                live(v),
                [*h],
                "{v} moved off edge-{h}\n{}",
                k.cluster.logs()
            );
        }
        if moving.iter().all(|v| live(v).len() == 1) {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "edge-{dead}'s VIPs not taken over: {:?}\n{}",
            moving.iter().map(|v| (v, live(v))).collect::<Vec<_>>(),
            k.cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let after: BTreeMap<&String, Vec<usize>> = moving.iter().map(|v| (*v, live(v))).collect();
    eprintln!(
        "edge-{dead} killed: its {} VIPs held again within {all_held:?} (polling {} VIPs); {after:?}",
        moving.len(),
        before.len()
    );
    // Master_Down_Interval is 3 x 100 ms + skew; the polling of 12 VIPs x 3 namespaces adds
    // its own round.
    assert!(all_held < Duration::from_secs(2), "took {all_held:?}");
    // The second in line rotates too: the share is split between the survivors.
    let heirs: BTreeSet<usize> = after.values().flatten().copied().collect();
    assert_eq!(
        heirs.len(),
        2,
        "edge-{dead}'s VIPs all went to one node: {after:?}"
    );
    // And stays so, the others unmoved.
    std::thread::sleep(Duration::from_millis(500));
    for (v, h) in before.iter().filter(|(_, h)| **h != dead) {
        assert_eq!(live(v), [*h], "{v} moved off edge-{h}");
    }
    for v in &moving {
        assert_eq!(live(v), after[v], "{v} moved again");
    }
}
