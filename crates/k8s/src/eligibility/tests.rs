use std::collections::BTreeMap;

use edgevip_config::{Defaults, HealthCheck, Instance, raw};
use edgevip_forward::Proto;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};

use super::*;
use crate::compat::{Method, ServiceRef};

const ME: &str = "edge-a";

fn node(name: &str, addr: &str) -> NodeInfo {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.status = Some(NodeStatus {
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            address: addr.into(),
        }]),
        ..Default::default()
    });
    NodeInfo::from_node(&n)
}

fn nodes() -> Vec<NodeInfo> {
    vec![node(ME, "192.0.2.11"), node("edge-b", "192.0.2.12")]
}

/// The compat instance serving `ns/svc` (NAT) for each of `services`.
fn desired(services: &[&str]) -> Desired {
    let raw = raw::Instance {
        name: Some(COMPAT_INSTANCE.into()),
        interface: Some("eth0".into()),
        vrid: Some(50),
        vips: vec!["192.0.2.100".into()],
        ..Default::default()
    };
    Desired {
        instances: vec![Instance::from_raw("data", raw, &Defaults::default()).unwrap()],
        services: services
            .iter()
            .map(|s| {
                let (namespace, name) = s.split_once('/').unwrap();
                let r = ServiceRef {
                    namespace: namespace.into(),
                    name: name.into(),
                    method: Method::Nat,
                };
                ("192.0.2.100".parse().unwrap(), r)
            })
            .collect(),
        ..Default::default()
    }
}

/// One slice of `svc` with ready endpoints at `eps` (address, node).
fn slices(svc: &str, eps: &[(&str, &str)]) -> BTreeMap<String, Slice> {
    let sl = Slice {
        service: svc.into(),
        ports: vec![("http".into(), 80, Proto::Tcp)],
        addresses: eps.iter().map(|(a, _)| a.parse().unwrap()).collect(),
        nodes: eps.iter().map(|(_, n)| n.to_string()).collect(),
    };
    [(format!("{svc}-abcde"), sl)].into()
}

fn auto() -> IngressCheck {
    IngressCheck::Auto(HealthCheck::http(
        "ingress",
        "http://127.0.0.1:10254/healthz",
    ))
}

fn run(d: &mut Desired, mode: Eligibility, sl: &BTreeMap<String, Slice>) -> Option<String> {
    apply(d, mode, &auto(), sl, &nodes(), ME);
    d.instances[0].ineligible.clone()
}

#[test]
fn any_endpoint_anywhere_makes_every_node_eligible() {
    let pod_elsewhere = slices("ing/nginx", &[("203.0.113.5", "worker-1")]);
    let mut d = desired(&["ing/nginx"]);
    assert_eq!(run(&mut d, Eligibility::AnyEndpoint, &pod_elsewhere), None);
    assert!(
        d.instances[0].health_checks.is_empty(),
        "pod network: no host check"
    );
    let none = slices("ing/nginx", &[]);
    let why = run(
        &mut desired(&["ing/nginx"]),
        Eligibility::AnyEndpoint,
        &none,
    );
    assert_eq!(why.as_deref(), Some("no ready endpoint of ing/nginx"));
    let why = run(
        &mut desired(&["ing/nginx"]),
        Eligibility::AnyEndpoint,
        &BTreeMap::new(),
    );
    assert!(why.is_some(), "no slice at all");
}

#[test]
fn local_endpoint_mode_wants_one_on_this_node() {
    let elsewhere = slices("ing/nginx", &[("203.0.113.5", "worker-1")]);
    let why = run(
        &mut desired(&["ing/nginx"]),
        Eligibility::LocalEndpoint,
        &elsewhere,
    );
    assert_eq!(
        why.as_deref(),
        Some("no ready endpoint of ing/nginx on this node")
    );
    let here = slices("ing/nginx", &[("203.0.113.6", ME)]);
    assert_eq!(
        run(
            &mut desired(&["ing/nginx"]),
            Eligibility::LocalEndpoint,
            &here
        ),
        None
    );
}

#[test]
fn one_service_without_endpoints_does_not_take_the_others_vips() {
    let mut sl = slices("ing/nginx", &[("203.0.113.5", "worker-1")]);
    sl.extend(slices("dns/coredns", &[]));
    let mut d = desired(&["ing/nginx", "dns/coredns"]);
    assert_eq!(run(&mut d, Eligibility::AnyEndpoint, &sl), None);
}

#[test]
fn auto_adds_the_ingress_check_when_endpoints_are_node_addresses() {
    let host_network = slices("ing/nginx", &[("192.0.2.12", "edge-b")]);
    let mut d = desired(&["ing/nginx"]);
    assert_eq!(run(&mut d, Eligibility::AnyEndpoint, &host_network), None);
    let names: Vec<_> = d.instances[0]
        .health_checks
        .iter()
        .map(|c| &c.name)
        .collect();
    assert_eq!(names, ["ingress"]);
    // Applied again (every rebuild): still one.
    run(&mut d, Eligibility::AnyEndpoint, &host_network);
    assert_eq!(d.instances[0].health_checks.len(), 1);
    // Off never adds it.
    let mut d = desired(&["ing/nginx"]);
    apply(
        &mut d,
        Eligibility::AnyEndpoint,
        &IngressCheck::Off,
        &host_network,
        &nodes(),
        ME,
    );
    assert!(d.instances[0].health_checks.is_empty());
}

#[test]
fn entries_without_a_service_are_not_gated() {
    let mut d = desired(&[]);
    assert_eq!(
        run(&mut d, Eligibility::LocalEndpoint, &BTreeMap::new()),
        None
    );
}

#[test]
fn entries_that_are_not_forwarded_are_not_gated() {
    let mut d = desired(&["ing/nginx"]);
    d.services[0].1.method = Method::Dr;
    assert_eq!(
        run(&mut d, Eligibility::AnyEndpoint, &BTreeMap::new()),
        None
    );
}
