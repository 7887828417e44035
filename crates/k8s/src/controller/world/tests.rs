//! The controller's logic without an API server: watch events in, desired states out.

use serde_json::{Value, json};

use super::*;
use crate::services::{DEFAULT_CLASS, LbSettings, Pool};

fn object<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn node(name: &str, ip: &str) -> Node {
    object(json!({"metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}))
}

fn configmap(data: Value) -> ConfigMap {
    object(json!({"metadata": {"name": "vips", "namespace": "edgevip"}, "data": data}))
}

fn service(name: &str, lb: bool, port: u16) -> Service {
    object(json!({"metadata": {"name": name, "namespace": "web"},
        "spec": {"type": if lb { "LoadBalancer" } else { "ClusterIP" },
                 "loadBalancerClass": DEFAULT_CLASS, "ports": [{"port": port}]}}))
}

fn slice(name: &str, svc: &str, ip: &str) -> EndpointSlice {
    object(json!({"metadata": {"name": name, "namespace": "web",
                               "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip]}]}))
}

fn options() -> Options {
    Options {
        settings: Settings {
            node_name: "edge-a".into(),
            vrid: 50,
            interface: None,
            unicast: true,
            advert_interval: Duration::from_millis(200),
            preempt: false,
            ingress_check: Default::default(),
            eligibility: Default::default(),
            lb: None,
            forwarding: false,
            bgp: None,
            proxy_header: edgevip_forward::ProxyHeader::V1,
            trust: Default::default(),
        },
        configmap_namespace: "edgevip".into(),
        configmap_name: "vips".into(),
        node_selector: "edgenode=true".into(),
        release_grace: Duration::from_secs(30),
        lease: None,
    }
}

/// Lists `objects` as a watch's first list does; returns what the last event said.
fn list(w: &mut World, wrap: fn(Event<Node>) -> Change, nodes: Vec<Node>) -> bool {
    w.apply(&wrap(Event::Init), Instant::now());
    for n in nodes {
        w.apply(&wrap(Event::InitApply(n)), Instant::now());
    }
    w.apply(&wrap(Event::InitDone), Instant::now())
}

fn list_maps(w: &mut World, maps: Vec<ConfigMap>) -> bool {
    w.apply(&Change::Map(Event::Init), Instant::now());
    for m in maps {
        w.apply(&Change::Map(Event::InitApply(m)), Instant::now());
    }
    w.apply(&Change::Map(Event::InitDone), Instant::now())
}

fn eth0() -> NodeLink {
    NodeLink::named("eth0", &["192.0.2.11/24"])
}

fn vips(d: &Desired) -> Vec<String> {
    d.instances
        .iter()
        .flat_map(|i| i.vips.iter().map(|v| v.addr.to_string()))
        .collect()
}

#[test]
fn nothing_is_built_before_every_watch_listed_once() {
    let mut o = options();
    o.settings.forwarding = true;
    let mut w = World::new(&o);
    assert!(list(
        &mut w,
        Change::Node,
        vec![node("edge-a", "192.0.2.11")]
    ));
    assert!(list_maps(
        &mut w,
        vec![configmap(json!({"192.0.2.100": ""}))]
    ));
    assert!(!w.synced(), "Services and EndpointSlices not listed yet");
    w.apply(&Change::Service(Event::InitDone), Instant::now());
    assert!(!w.synced());
    w.apply(&Change::Slice(Event::InitDone), Instant::now());
    assert!(w.synced());
    assert_eq!(w.my_addresses(), ["192.0.2.11".parse::<IpAddr>().unwrap()]);
    let d = w.rebuild(&eth0());
    assert_eq!(vips(&d), ["192.0.2.100"]);
    let st = w.status(&d, &eth0(), Duration::from_micros(7), &Default::default());
    assert_eq!(
        (
            st.configmap.as_str(),
            st.configmap_present,
            st.rebuilds,
            st.last_rebuild_us
        ),
        ("edgevip/vips", true, 1, 7)
    );
    assert_eq!(st.edge_nodes, ["edge-a"]);
    assert_eq!(st.interface.as_deref(), Some("eth0"));
}

#[test]
fn a_deleted_configmap_is_held_for_the_grace_period() {
    let mut w = World::new(&options());
    list(&mut w, Change::Node, vec![node("edge-a", "192.0.2.11")]);
    list_maps(&mut w, vec![configmap(json!({"192.0.2.100": ""}))]);
    assert_eq!(w.next_deadline(), None);
    let t0 = Instant::now();
    assert!(w.apply(&Change::Map(Event::Delete(configmap(json!({})))), t0));
    let d = w.rebuild(&eth0());
    assert_eq!(vips(&d), ["192.0.2.100"], "kept within grace");
    let st = w.status(
        &d,
        &NodeLink::default(),
        Duration::ZERO,
        &Default::default(),
    );
    assert!(st.release_pending && !st.configmap_present);
    let end = t0 + Duration::from_secs(30);
    assert_eq!(w.next_deadline(), Some(end));
    assert!(!w.on_timer(end - Duration::from_millis(1)));
    assert!(w.on_timer(end));
    assert!(w.rebuild(&eth0()).instances.is_empty(), "released");
    assert_eq!(w.next_deadline(), None);

    // Back within the grace period: nothing is released; a re-list without it counts as
    // a delete.
    w.apply(
        &Change::Map(Event::Apply(configmap(json!({"192.0.2.101": ""})))),
        t0,
    );
    assert!(list_maps(&mut w, vec![]));
    assert!(w.next_deadline().is_some());
    w.apply(
        &Change::Map(Event::Apply(configmap(json!({"192.0.2.102": ""})))),
        t0,
    );
    assert_eq!(w.next_deadline(), None);
    assert!(!w.on_timer(end + Duration::from_secs(60)));
    assert_eq!(vips(&w.rebuild(&eth0())), ["192.0.2.102"]);
}

#[test]
fn only_changes_to_forwarded_services_cause_a_rebuild() {
    let mut o = options();
    o.settings.forwarding = true;
    let mut w = World::new(&o);
    let now = Instant::now();
    list(&mut w, Change::Node, vec![node("edge-a", "192.0.2.11")]);
    list_maps(
        &mut w,
        vec![configmap(json!({"192.0.2.100": "web/front:NAT"}))],
    );
    w.apply(&Change::Service(Event::Init), now);
    w.apply(
        &Change::Service(Event::InitApply(service("front", false, 80))),
        now,
    );
    w.apply(&Change::Service(Event::InitDone), now);
    w.apply(&Change::Slice(Event::InitDone), now);
    let d = w.rebuild(&eth0());
    assert!(d.forward.nat[0].backends.is_empty());
    assert!(
        d.warnings[0]
            .message
            .ends_with("nothing is forwarded for it yet"),
        "{:?}",
        d.warnings
    );

    let other = |e| Change::Service(e);
    assert!(!w.apply(&other(Event::Apply(service("plain", false, 80))), now));
    assert!(!w.apply(&other(Event::Apply(service("plain", false, 81))), now));
    assert!(!w.apply(&other(Event::Delete(service("plain", false, 81))), now));
    assert!(!w.apply(
        &Change::Slice(Event::Apply(slice("p-1", "plain", "10.0.0.9"))),
        now
    ));
    assert!(
        !w.apply(&other(Event::Apply(service("front", false, 80))), now),
        "same"
    );
    assert!(w.apply(&other(Event::Apply(service("front", false, 8443))), now));
    assert!(w.apply(
        &Change::Slice(Event::Apply(slice("f-1", "front", "198.51.100.5"))),
        now
    ));
    let d = w.rebuild(&eth0());
    let nat = &d.forward.nat[0];
    assert_eq!(nat.port, 8443);
    assert_eq!(nat.backends, ["198.51.100.5:8080".parse().unwrap()]);
    assert!(w.apply(
        &Change::Slice(Event::Delete(slice("f-1", "front", ""))),
        now
    ));
}

#[test]
fn a_failed_status_write_is_retried_after_a_pause_not_at_once() {
    let mut o = options();
    o.settings.lb = Some(LbSettings {
        class: DEFAULT_CLASS.into(),
        default_class: false,
        pool: Pool::parse("198.51.100.10-198.51.100.12").unwrap(),
        vrids: 100..=149,
    });
    let mut w = World::new(&o);
    let t0 = Instant::now();
    list(&mut w, Change::Node, vec![node("edge-a", "192.0.2.11")]);
    list_maps(&mut w, vec![]);
    w.apply(&Change::Service(Event::Init), t0);
    w.apply(
        &Change::Service(Event::InitApply(service("front", true, 80))),
        t0,
    );
    assert!(w.apply(&Change::Service(Event::InitDone), t0));
    let d = w.rebuild(&eth0());
    assert!(!d.writer, "not before this pod holds the allocator Lease");
    assert_eq!(w.writes_due(&d), []);
    assert!(w.set_allocator(true));
    let d = w.rebuild(&eth0());
    assert!(d.writer);
    let write = (
        "web/front".to_string(),
        Some(vec!["198.51.100.10".parse::<IpAddr>().unwrap()]),
    );
    assert_eq!(w.writes_due(&d), std::slice::from_ref(&write));
    let d = w.rebuild(&eth0());
    assert_eq!(w.writes_due(&d), [], "one write until the watch shows it");

    w.write_failed(write.0.clone(), t0);
    let d = w.rebuild(&eth0());
    assert_eq!(w.writes_due(&d), [], "not at once");
    assert_eq!(w.next_deadline(), Some(t0 + RETRY_AFTER));
    assert!(!w.on_timer(t0 + RETRY_AFTER - Duration::from_millis(1)));
    assert!(w.on_timer(t0 + RETRY_AFTER));
    let d = w.rebuild(&eth0());
    assert_eq!(w.writes_due(&d), [write]);
    assert_eq!(w.next_deadline(), None);
}

fn ready_node(name: &str, ip: &str) -> Node {
    node_ready(name, ip, "True")
}

fn node_ready(name: &str, ip: &str, ready: &str) -> Node {
    object(json!({"metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": ready}]}}))
}

#[test]
fn one_pod_speaks_for_the_cluster() {
    // Without a Lease: the first ready edge node in address order.
    let mut w = World::new(&options());
    list(
        &mut w,
        Change::Node,
        vec![ready_node("edge-a", "192.0.2.11")],
    );
    assert!(w.speaks_for_cluster());
    let mut w = World::new(&options());
    list(
        &mut w,
        Change::Node,
        vec![
            ready_node("edge-a", "192.0.2.11"),
            ready_node("edge-z", "192.0.2.9"),
        ],
    );
    assert!(!w.speaks_for_cluster(), "edge-z (192.0.2.9) comes first");
    // A first node that is not Ready does not speak; the next one does.
    let mut w = World::new(&options());
    list(
        &mut w,
        Change::Node,
        vec![
            ready_node("edge-a", "192.0.2.11"),
            node_ready("edge-z", "192.0.2.9", "False"),
        ],
    );
    assert!(w.speaks_for_cluster());
    // With a Lease: its holder, whatever the order.
    let mut o = options();
    o.lease = Some(crate::lease::LeaseOptions {
        namespace: "edgevip".into(),
        name: "edgevip-allocator".into(),
        identity: "edge-a".into(),
        duration: Duration::from_secs(15),
    });
    let mut w = World::new(&o);
    list(
        &mut w,
        Change::Node,
        vec![ready_node("edge-a", "192.0.2.11")],
    );
    assert!(!w.speaks_for_cluster(), "not before it holds the Lease");
    w.set_allocator(true);
    assert!(w.speaks_for_cluster());
}

fn lb_options() -> Options {
    let mut o = options();
    o.settings.lb = Some(LbSettings {
        class: DEFAULT_CLASS.into(),
        default_class: false,
        pool: Pool::parse("198.51.100.10-198.51.100.12").unwrap(),
        vrids: 100..=149,
    });
    o
}

fn vippool(name: &str, addresses: Value, status: Value) -> DynamicObject {
    object(
        json!({"apiVersion": "edgevip.io/v1alpha1", "kind": "VIPPool",
        "metadata": {"name": name, "uid": format!("uid-{name}")},
        "spec": {"addresses": addresses}, "status": status}),
    )
}

fn namespace(name: &str, labels: Value) -> Namespace {
    object(json!({"metadata": {"name": name, "labels": labels}}))
}

/// Nodes, the ConfigMap and Services listed (none): only pools and namespaces are left.
fn lb_world() -> World {
    let mut w = World::new(&lb_options());
    let now = Instant::now();
    list(&mut w, Change::Node, vec![node("edge-a", "192.0.2.11")]);
    list_maps(&mut w, vec![]);
    w.apply(&Change::Service(Event::InitDone), now);
    // Endpoints are watched in LoadBalancer mode (externalTrafficPolicy: Local).
    w.apply(&Change::Slice(Event::InitDone), now);
    w
}

fn names(w: &World) -> Vec<String> {
    w.pool_defs().into_iter().map(|p| p.name).collect()
}

#[test]
fn pools_and_namespaces_are_followed_in_load_balancer_mode() {
    let mut w = lb_world();
    let now = Instant::now();
    assert!(!w.synced(), "VIPPools and Namespaces not listed yet");
    w.apply(&Change::Pool(Event::Init), now);
    for p in [
        vippool("zeta", json!(["203.0.113.0/30"]), json!({})),
        vippool("alpha", json!(["192.0.2.100"]), json!({})),
        vippool("broken", json!(["192.0.2.300"]), json!({})),
    ] {
        w.apply(&Change::Pool(Event::InitApply(p)), now);
    }
    assert!(w.apply(&Change::Pool(Event::InitDone), now));
    assert!(!w.synced());
    w.apply(&Change::Namespace(Event::Init), now);
    w.apply(
        &Change::Namespace(Event::InitApply(namespace("web", json!({"team": "a"})))),
        now,
    );
    w.apply(&Change::Namespace(Event::InitDone), now);
    assert!(w.synced());
    assert_eq!(names(&w), ["--address-pool", "alpha", "zeta"]);
    assert_eq!(w.pool_defs()[2].ranges.0.len(), 1);
    assert_eq!(w.namespaces.items()["web"]["team"], "a");
    let (refused, overlapping) = w.pool_problems();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].object.as_str(), refused[0].field.as_str()),
        ("VIPPool broken", "spec.addresses[0]")
    );
    assert!(overlapping.is_empty());
    assert_eq!(w.pool_uid("alpha").as_deref(), Some("uid-alpha"));

    // Edited live: an overlap with the flag's pool is a warning, not a refusal.
    assert!(w.apply(
        &Change::Pool(Event::Apply(vippool(
            "alpha",
            json!(["192.0.2.100", "198.51.100.12"]),
            json!({})
        ))),
        now
    ));
    assert_eq!(w.pool_defs()[1].ranges.0.len(), 2);
    let (_, overlapping) = w.pool_problems();
    assert_eq!(overlapping[0].object, "VIPPool alpha");
    let d = w.rebuild(&eth0());
    let st = w.status(&d, &eth0(), Duration::ZERO, &Default::default());
    assert_eq!(st.pools.len(), 3);
    assert_eq!(st.pools[1].addresses, ["192.0.2.100", "198.51.100.12"]);
    assert_eq!(st.pools[0].addresses, ["198.51.100.10-198.51.100.12"]);
    assert!(st.rejected.iter().any(|r| r.object == "VIPPool broken"));
    assert!(st.warnings.iter().any(|r| r.object == "VIPPool alpha"));

    // A namespace's labels matter, nothing else of it.
    assert!(!w.apply(
        &Change::Namespace(Event::Apply(namespace("web", json!({"team": "a"})))),
        now
    ));
    assert!(w.apply(
        &Change::Namespace(Event::Apply(namespace("web", json!({"team": "b"})))),
        now
    ));
    assert!(w.apply(
        &Change::Pool(Event::Delete(vippool("zeta", json!([]), json!({})))),
        now
    ));
    assert_eq!(names(&w), ["--address-pool", "alpha"]);
}

#[test]
fn a_missing_crd_is_no_pools_and_blocks_nothing() {
    let mut w = lb_world();
    let now = Instant::now();
    w.apply(&Change::Namespace(Event::InitDone), now);
    assert!(!w.synced());
    assert!(w.pools_missing());
    assert!(w.synced());
    assert!(!w.pools_missing(), "said once");
    assert_eq!(names(&w), ["--address-pool"]);
    let d = w.rebuild(&eth0());
    assert!(
        w.status(&d, &eth0(), Duration::ZERO, &Default::default())
            .vippool_crd_missing
    );
    // A retry starts with Init, then finds the CRD still missing: nothing said again.
    w.apply(&Change::Pool(Event::Init), now);
    assert!(
        w.status(&d, &eth0(), Duration::ZERO, &Default::default())
            .vippool_crd_missing
    );
    assert!(!w.pools_missing(), "no flip-flop on a retry");
    // Installed later: read.
    w.apply(&Change::Pool(Event::Init), now);
    assert!(
        w.status(&d, &eth0(), Duration::ZERO, &Default::default())
            .vippool_crd_missing
    );
    w.apply(
        &Change::Pool(Event::InitApply(vippool(
            "late",
            json!(["192.0.2.100"]),
            json!({}),
        ))),
        now,
    );
    assert!(w.apply(&Change::Pool(Event::InitDone), now));
    assert_eq!(names(&w), ["--address-pool", "late"]);
    assert!(
        !w.status(&d, &eth0(), Duration::ZERO, &Default::default())
            .vippool_crd_missing
    );
    // Without LoadBalancer mode nothing is watched and nothing waits.
    let w = World::new(&options());
    assert!(w.pool_defs().is_empty());
}

#[test]
fn the_allocator_writes_pool_status_when_it_differs_and_retries() {
    let mut w = lb_world();
    let t0 = Instant::now();
    w.apply(&Change::Namespace(Event::InitDone), t0);
    w.apply(&Change::Pool(Event::Init), t0);
    w.apply(
        &Change::Pool(Event::InitApply(vippool(
            "a",
            json!(["192.0.2.100-192.0.2.103"]),
            json!({}),
        ))),
        t0,
    );
    w.apply(
        &Change::Pool(Event::InitApply(vippool("bad", json!(["x"]), json!({})))),
        t0,
    );
    w.apply(&Change::Pool(Event::InitDone), t0);
    let uses = pools::usage(&w.pool_defs(), ["192.0.2.101".parse().unwrap()].into_iter());
    assert_eq!(w.pool_status_due(&uses), [], "not the allocator");
    w.set_allocator(true);
    let due = w.pool_status_due(&uses);
    let got: Vec<(&str, &Value, &Value, &Value)> = due
        .iter()
        .map(|(n, s)| {
            (
                n.as_str(),
                &s["allocated"],
                &s["free"],
                &s["conditions"][0]["reason"],
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a", &json!(1), &json!(3), &json!("Accepted")),
            ("bad", &json!(0), &json!(0), &json!("InvalidSpec"))
        ]
    );
    assert_eq!(
        w.pool_status_due(&uses),
        [],
        "once until the watch shows it"
    );
    // RFC 3339 to the second, as metav1.Time.
    let since = due[0].1["conditions"][0]["lastTransitionTime"]
        .as_str()
        .unwrap();
    assert!(
        since.len() == 20
            && since.ends_with('Z')
            && since.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "{since}"
    );

    // The write of `a` failed: again after the pause, not before.
    w.pool_write_failed("a".into(), t0);
    assert_eq!(w.pool_status_due(&uses), []);
    assert!(w.on_timer(t0 + RETRY_AFTER));
    let again = w.pool_status_due(&uses);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, "a");

    // The watch shows what was written: nothing more is due, even with a new time.
    let written = again[0].1.clone();
    w.apply(
        &Change::Pool(Event::Apply(vippool(
            "a",
            json!(["192.0.2.100-192.0.2.103"]),
            written.clone(),
        ))),
        t0,
    );
    w.apply(
        &Change::Pool(Event::Apply(vippool("bad", json!(["x"]), due[1].1.clone()))),
        t0,
    );
    assert_eq!(w.pool_status_due(&uses), []);
    // One more address in use: written again, the Ready condition's time kept.
    let uses = pools::usage(
        &w.pool_defs(),
        ["192.0.2.101", "192.0.2.102"]
            .map(|s| s.parse().unwrap())
            .into_iter(),
    );
    let due = w.pool_status_due(&uses);
    assert_eq!(due[0].1["allocated"], 2);
    assert_eq!(
        due[0].1["conditions"][0]["lastTransitionTime"],
        written["conditions"][0]["lastTransitionTime"]
    );
    // Losing the Lease forgets writes in flight: the next term sends them again.
    w.set_allocator(false);
    assert_eq!(w.pool_status_due(&uses), []);
    w.set_allocator(true);
    assert_eq!(w.pool_status_due(&uses).len(), 1);
}
