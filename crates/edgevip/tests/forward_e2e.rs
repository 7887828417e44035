//! Forwarding end to end (issue 5): kube-keepalived-vip ConfigMap entries `ns/svc` (NAT)
//! and `ns/svc:PROXY` on the Kubernetes lab, with "pods" (namespaces on a second bridge)
//! behind the edge nodes, EndpointSlices in the fake API server.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::VIP4;
use edgevip_lab::KubeLab;
use edgevip_lab::kube::POD_TCP;
use serde_json::json;

fn lab(test: &str) -> Option<KubeLab> {
    let mut k = KubeLab::new(test, 3, env!("CARGO_BIN_EXE_edgevip"))?;
    k.add_pods(3);
    k.set_service("web", "front");
    k.set_endpoints("web", "front", &[0, 1, 2]);
    for i in 0..3 {
        k.start_node(i, &["--advert-interval", "100ms"]);
    }
    k.wait_ready(Duration::from_secs(15));
    Some(k)
}

/// `n` TCP requests to VIP:80; the set of pods that answered and the client addresses
/// they saw.
fn spread(k: &KubeLab, n: usize) -> (BTreeSet<String>, BTreeSet<String>, usize) {
    let target = SocketAddr::new(VIP4.parse().unwrap(), 80);
    let mut pods = BTreeSet::new();
    let mut clients = BTreeSet::new();
    let mut failed = 0;
    for _ in 0..n {
        match k.tcp_request(target) {
            Some(answer) => {
                let (pod, client) = answer.split_once(' ').unwrap_or((&answer, ""));
                pods.insert(pod.to_string());
                clients.insert(client.rsplit_once(':').map_or(client, |c| c.0).to_string());
            }
            None => failed += 1,
        }
    }
    (pods, clients, failed)
}

#[test]
fn nat_spreads_over_ready_endpoints_follows_them_and_survives_failover() {
    let Some(mut k) = lab("forward_nat") else {
        return;
    };
    k.set_configmap(json!({VIP4: "web/front"}));
    let m = k.cluster.single_holder(VIP4, None, Duration::from_secs(5));

    let (pods, clients, failed) = spread(&k, 30);
    assert_eq!(failed, 0, "{}", k.cluster.logs());
    assert_eq!(pods.len(), 3, "30 requests reach all 3 endpoints: {pods:?}");
    // Source NAT: the pods answer the node, which answers the client.
    assert_eq!(clients, BTreeSet::from([format!("198.51.100.{}", 11 + m)]));
    let udp = k.udp_request(SocketAddr::new(VIP4.parse().unwrap(), 53));
    assert!(
        udp.as_deref().is_some_and(|a| a.starts_with("pod")),
        "UDP: {udp:?}"
    );

    // An endpoint leaves the EndpointSlice: no new connection reaches it 100 ms later.
    k.set_endpoints("web", "front", &[0, 1]);
    std::thread::sleep(Duration::from_millis(100));
    let (pods, _, failed) = spread(&k, 30);
    assert_eq!(failed, 0);
    assert_eq!(
        pods,
        BTreeSet::from(["pod0".to_string(), "pod1".to_string()])
    );

    // The master stops (a rolling update): the service keeps answering.
    let target = SocketAddr::new(VIP4.parse().unwrap(), 80);
    let start = Instant::now();
    let mut last_ok = Instant::now();
    let mut longest = Duration::ZERO;
    let mut stopped = false;
    let mut ok = 0;
    while start.elapsed() < Duration::from_secs(3) {
        if !stopped && start.elapsed() > Duration::from_millis(500) {
            k.cluster.signal(m, nix::sys::signal::Signal::SIGTERM);
            stopped = true;
        }
        if k.tcp_request(target).is_some() {
            longest = longest.max(last_ok.elapsed());
            last_ok = Instant::now();
            ok += 1;
        }
    }
    longest = longest.max(last_ok.elapsed());
    eprintln!("NAT through a master SIGTERM: {ok} answers, longest gap {longest:?}");
    // Max of 10 runs: 60 ms; bound 3x.
    assert!(
        longest < Duration::from_millis(180),
        "gap {longest:?}\n{}",
        k.cluster.logs()
    );
    let n = k
        .cluster
        .single_holder(VIP4, Some(m), Duration::from_secs(5));
    assert_ne!(n, m);
    let st: serde_json::Value =
        serde_json::from_str(&k.cluster.status_json(n, common::API)).unwrap();
    let fwd = st["kubernetes"]["forwarded"].to_string();
    assert!(
        fwd.contains("192.0.2.100:80 tcp/80 nat -> 2 endpoints"),
        "{st:#}"
    );
}

#[test]
fn proxy_mode_shows_the_client_and_skips_dead_backends() {
    let Some(mut k) = lab("forward_proxy") else {
        return;
    };
    k.set_configmap(json!({VIP4: "web/front:PROXY"}));
    let m = k.cluster.single_holder(VIP4, None, Duration::from_secs(5));
    let (pods, clients, failed) = spread(&k, 30);
    assert_eq!(failed, 0, "{}", k.cluster.logs());
    assert_eq!(pods.len(), 3, "round robin over 3: {pods:?}");
    assert_eq!(
        clients,
        BTreeSet::from([k.cluster.lab.client().ip4.to_string()]),
        "the PROXY header carries the real client"
    );
    // A backend dies but is still listed: connects to it fail, the next one answers.
    k.stop_pod(1);
    let (pods, _, failed) = spread(&k, 20);
    assert_eq!(failed, 0);
    assert!(!pods.contains("pod1"), "{pods:?}");
    // The proxy dialled the pods' target port (the EndpointSlice's, not the Service's 80)
    // and counted the dead backend's refusals.
    let series = |what: &str, pod: usize| {
        format!(
            "edgevip_proxy_{what}_total{{frontend=\"{VIP4}:80\",backend=\"{}:{POD_TCP}\"}}",
            KubeLab::pod_ip(pod)
        )
    };
    for pod in [0, 2] {
        let n = k.cluster.metric(m, &series("connections", pod));
        assert!(n >= 1.0, "{}: {n}", series("connections", pod));
    }
    let refused = k.cluster.metric(m, &series("connect_failures", 1));
    assert!(
        refused >= 1.0,
        "{}: {refused}",
        series("connect_failures", 1)
    );
    // Removed from the endpoints: no new connections to it, and the series of the removed
    // backends are gone (metrics do not grow with pod churn).
    k.set_endpoints("web", "front", &[0]);
    std::thread::sleep(Duration::from_millis(100));
    let (pods, _, _) = spread(&k, 10);
    assert_eq!(pods, BTreeSet::from(["pod0".to_string()]));
    let (_, text) = k.cluster.http_get(m, "/metrics");
    for pod in [1, 2] {
        let gone = format!("backend=\"{}:{POD_TCP}\"", KubeLab::pod_ip(pod));
        assert!(
            !text.contains(&gone),
            "series of removed pod{pod} still there"
        );
    }
    assert!(text.contains(&series("connections", 0)));
}

/// The README's default setup (issue 11): ingress pods on the pod network, no health port on
/// the nodes, every flag at its default. A node is eligible while the Service has ready
/// endpoints; the VIP serves through NAT soon after the ConfigMap appears, leaves every node
/// when the endpoints are gone, and comes back with them.
#[test]
fn by_default_a_pod_network_ingress_is_served_while_it_has_ready_endpoints() {
    let Some(mut k) = KubeLab::new("fwd_default", 2, env!("CARGO_BIN_EXE_edgevip")) else {
        return;
    };
    k.add_pods(2);
    k.set_service("web", "front");
    k.set_endpoints("web", "front", &[0, 1]);
    k.ingress_check = None;
    for i in 0..2 {
        // Pod-network ingress: nothing answers on the nodes' 127.0.0.1:10254.
        k.stop_ingress(i);
        k.start_node(i, &["--advert-interval", "100ms"]);
    }
    k.wait_ready(Duration::from_secs(15));
    let target = SocketAddr::new(VIP4.parse().unwrap(), 80);
    let created = Instant::now();
    k.set_configmap(json!({VIP4: "web/front"}));
    let took = k.wait_served(target, created, Duration::from_secs(2));
    eprintln!("ConfigMap created -> served through NAT: {took:?}");
    k.cluster.single_holder(VIP4, None, Duration::from_secs(2));

    // No ready endpoint: no node is eligible, the VIP leaves.
    k.set_endpoints("web", "front", &[]);
    let gone = Instant::now();
    while !k.cluster.holders(VIP4).is_empty() {
        assert!(gone.elapsed() < Duration::from_secs(3), "VIP still held");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st: serde_json::Value =
        serde_json::from_str(&k.cluster.status_json(0, common::API)).unwrap();
    let vips = &st["instances"][0];
    assert_eq!(
        (vips["state"].as_str(), vips["ineligible"].as_str()),
        (Some("fault"), Some("no ready endpoint of web/front")),
        "{st:#}"
    );
    k.set_endpoints("web", "front", &[1]);
    k.cluster.single_holder(VIP4, None, Duration::from_secs(3));
    let (pods, _, failed) = spread(&k, 5);
    assert_eq!((failed, pods), (0, BTreeSet::from(["pod1".to_string()])));
}
