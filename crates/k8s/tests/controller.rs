//! The real controller (kube watchers) against the in-process fake API server: list/watch,
//! 410 Gone, faults, grace on delete, Events, and how fast a change reaches the output.

use std::time::{Duration, Instant};

use edgevip_fakeapi::{FakeApi, Fault};
mod common;

use common::{NS, load_balancers, options, resolver};
use edgevip_k8s::controller::{self, Handle};
use edgevip_k8s::desired::Desired;
use edgevip_k8s::events::Events;
use serde_json::{Value, json};

const CM: &str = "vips";

fn node(name: &str, ip: &str, edge: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": if edge { json!({"edgenode": "true"}) } else { json!({}) }},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data})
}

fn client(addr: std::net::SocketAddr) -> kube::Client {
    // HTTPS as edgevip's ServiceAccount: RBAC from the shipped manifests applies.
    let mut c = edgevip_fakeapi::kube_config(addr);
    c.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(c).unwrap()
}

/// Waits (bounded) for a desired state matching `f`; returns it and how long it took.
async fn wait_desired(
    h: &mut Handle,
    what: &str,
    f: impl Fn(&Desired) -> bool,
) -> (Desired, Duration) {
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(d) = h.desired.borrow_and_update().clone()
                && f(&d)
            {
                return d;
            }
            h.desired.changed().await.expect("controller alive");
        }
    })
    .await;
    match r {
        Ok(d) => (d, start.elapsed()),
        Err(_) => panic!(
            "timed out waiting for {what}; last: {:?}\nstatus: {:?}",
            h.desired.borrow(),
            h.status.borrow()
        ),
    }
}

fn vips(d: &Desired) -> Vec<String> {
    d.instances
        .iter()
        .flat_map(|i| i.vips.iter().map(|v| v.addr.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_cluster_and_rides_out_api_trouble() {
    let api = FakeApi::new();
    let server = api.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    api.apply(node("edge-a", "192.0.2.11", true));
    api.apply(node("edge-b", "192.0.2.12", true));
    api.apply(node("worker", "192.0.2.50", false));
    let c = client(server.addr());
    let mut h = controller::start(
        c.clone(),
        options(Duration::from_millis(600)),
        resolver(),
        Some(Events::new(c, "edge-a")),
    );

    // Synced without a ConfigMap: ready, nothing to serve.
    let (d, _) = wait_desired(&mut h, "first sync", |_| true).await;
    assert!(d.instances.is_empty());
    assert!(h.status.borrow().synced);

    // The ConfigMap appears.
    api.apply(configmap(
        CM,
        json!({"192.0.2.100": "default/ingress", "bad-key": ""}),
    ));
    let (d, took) = wait_desired(&mut h, "the VIP", |d| vips(d) == ["192.0.2.100"]).await;
    eprintln!("ConfigMap create -> desired state: {took:?}");
    let inst = &d.instances[0];
    assert_eq!(
        inst.unicast_peers,
        vec!["192.0.2.12".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(inst.priority, 200);
    assert_eq!(inst.interface, "eth0");
    assert_eq!(d.rejects.len(), 1);

    // A new edge node updates the peers live; a non-edge node change is invisible.
    api.apply(node("edge-c", "192.0.2.9", true));
    let (d, _) = wait_desired(&mut h, "three peers", |d| {
        d.instances[0].unicast_peers.len() == 2
    })
    .await;
    assert_eq!(d.instances[0].priority, 190, "192.0.2.9 sorts first");
    h.desired.borrow_and_update();
    api.apply(node("worker", "192.0.2.51", false));
    api.apply(configmap("unrelated", json!({"x": "y"})));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !h.desired.has_changed().unwrap(),
        "unrelated objects must not produce a new state"
    );

    // Edits apply quickly: median of 20.
    let mut took = Vec::new();
    for k in 0..20 {
        let vip = format!("192.0.2.{}", 120 + k);
        api.apply(configmap(CM, json!({"192.0.2.100": "", vip.clone(): ""})));
        let (_, t) = wait_desired(&mut h, "edit", |d| vips(d).contains(&vip)).await;
        took.push(t);
    }
    took.sort();
    eprintln!(
        "ConfigMap edit -> desired state: median {:?}, max {:?}",
        took[10], took[19]
    );
    assert!(
        took[10] < Duration::from_millis(100),
        "median {:?}",
        took[10]
    );

    // 410 Gone: history compacted and watches cut; the controller re-lists and its state
    // stays the same (no spurious change: nothing is published anew).
    let before = h.desired.borrow_and_update().clone();
    let lists = |api: &FakeApi, kind: &str| {
        api.requests()
            .iter()
            .filter(|r| !r.is_watch() && r.path.ends_with(kind))
            .count()
    };
    let lists_before = (lists(&api, "/configmaps"), lists(&api, "/nodes"));
    // Objects no watch of ours sees move the global version past what the watches know.
    api.apply(configmap("unrelated", json!({"x": "z"})));
    api.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "default"}}));
    api.compact();
    api.close_watches();
    // A watch that follows its re-list means the re-list went through the controller: the
    // watcher asks for it only when polled again, after the controller handled the list.
    let watching_after_relist = |api: &FakeApi, kind: &str, before: usize| {
        let reqs: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(kind))
            .collect();
        let last_list = reqs.iter().rposition(|r| !r.is_watch());
        lists(api, kind) > before
            && last_list.is_some_and(|i| reqs[i + 1..].iter().any(|r| r.is_watch()))
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(watching_after_relist(&api, "/configmaps", lists_before.0)
            && watching_after_relist(&api, "/nodes", lists_before.1))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the 410 forced a re-list of both watches");
    assert!(
        !h.desired.has_changed().unwrap(),
        "a re-list of unchanged objects published a new state: {:?}",
        h.desired.borrow()
    );
    assert_eq!(*h.desired.borrow(), before);
    api.apply(configmap(CM, json!({"192.0.2.100": "", "192.0.2.200": ""})));
    let (d, _) = wait_desired(&mut h, "edit after 410", |d| {
        vips(d).contains(&"192.0.2.200".to_string())
    })
    .await;
    assert_eq!(vips(&d), ["192.0.2.100", "192.0.2.200"], "the edit, whole");

    // The API failing: nothing changes, nothing is released; it recovers.
    api.set_fault(Fault::Status(500));
    api.close_watches();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let d = h.desired.borrow().clone().unwrap();
    assert!(
        vips(&d).contains(&"192.0.2.200".to_string()),
        "state kept during the outage"
    );
    assert!(h.status.borrow().watch_errors > 0);
    api.set_fault(Fault::None);
    api.apply(configmap(CM, json!({"192.0.2.100": "", "192.0.2.201": ""})));
    wait_desired(&mut h, "edit after recovery", |d| {
        vips(d).contains(&"192.0.2.201".to_string())
    })
    .await;

    // Deleting the ConfigMap releases only after the grace period.
    let deleted = Instant::now();
    api.delete("v1", "ConfigMap", Some(NS), CM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !h.desired.borrow().as_ref().unwrap().instances.is_empty(),
        "kept within grace"
    );
    assert!(h.status.borrow().release_pending);
    wait_desired(&mut h, "release after grace", |d| d.instances.is_empty()).await;
    assert!(deleted.elapsed() >= Duration::from_millis(600));

    // Events: the rejected key, on the ConfigMap; only once despite re-lists.
    let events = api.list("events.k8s.io/v1", "Event");
    let rejected: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "RejectedEntry")
        .collect();
    assert_eq!(rejected.len(), 1, "{events:#?}");
    assert_eq!(rejected[0]["regarding"]["kind"], "ConfigMap");
    assert!(rejected[0]["note"].as_str().unwrap().contains("bad-key"));
    assert_eq!(rejected[0]["type"], "Warning");

    // Watches, not polling: few list calls overall, and bookmarks asked for.
    let reqs = api.requests();
    let watches = reqs.iter().filter(|r| r.is_watch()).count();
    let lists = reqs
        .iter()
        .filter(|r| r.method == "GET" && !r.is_watch())
        .count();
    assert!(
        watches >= 2 && lists < 40,
        "watches {watches}, lists {lists}"
    );
    assert!(
        reqs.iter()
            .any(|r| r.param("allowWatchBookmarks").as_deref() == Some("true"))
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_node_leaving_the_edge_set_releases() {
    let api = FakeApi::new();
    let server = api.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    api.apply(node("edge-a", "192.0.2.11", true));
    api.apply(configmap(CM, json!({"edgevip.yaml": "instances:\n  - {name: web, vrid: 51, vips: [192.0.2.100/24, 2001:db8::100/64]}\n"})));
    let mut h = controller::start(
        client(server.addr()),
        options(Duration::from_secs(30)),
        resolver(),
        None,
    );
    let (d, _) = wait_desired(&mut h, "rich instance", |d| d.instances.len() == 1).await;
    assert_eq!(d.instances[0].name, "web");
    assert!(
        d.instances[0].unicast && d.instances[0].unicast_peers.is_empty(),
        "alone: unicast, no peers yet"
    );
    api.apply(node("edge-a", "192.0.2.11", false));
    let (d, _) = wait_desired(&mut h, "released", |d| d.instances.is_empty()).await;
    assert!(d.rejects[0].message.contains("not among the edge nodes"));
    server.shutdown();
}

fn service(ns: &str, name: &str, lb: bool, class: Option<&str>, ip: Option<&str>) -> Value {
    let mut spec =
        json!({"type": if lb { "LoadBalancer" } else { "ClusterIP" }, "ports": [{"port": 80}]});
    if let Some(c) = class {
        spec["loadBalancerClass"] = json!(c);
    }
    if let Some(ip) = ip {
        spec["loadBalancerIP"] = json!(ip);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_services_get_vips_recorded_by_one_writer() {
    use edgevip_k8s::services::DEFAULT_CLASS;
    let api = FakeApi::new();
    let server = api.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    api.apply(node("edge-a", "192.0.2.11", true));
    api.apply(node("edge-b", "192.0.2.12", true));
    for k in 0..200 {
        api.apply(service("apps", &format!("plain-{k}"), false, None, None));
    }
    api.apply(service("web", "front", true, Some(DEFAULT_CLASS), None));
    api.apply(service(
        "web",
        "pinned",
        true,
        Some(DEFAULT_CLASS),
        Some("203.0.113.7"),
    ));
    api.apply(service("web", "metallb", true, Some("metallb.io/x"), None));
    // A requested address must lie in the pool.
    let lb = |me: &str| {
        let pool = "198.51.100.10-198.51.100.12,203.0.113.7";
        load_balancers(
            options(Duration::from_secs(30)),
            me,
            pool,
            Duration::from_secs(3),
        )
    };
    let c = client(server.addr());
    let mut a = controller::start(
        c.clone(),
        lb("edge-a"),
        resolver(),
        Some(Events::new(c.clone(), "edge-a")),
    );
    let mut b = controller::start(
        c.clone(),
        lb("edge-b"),
        resolver(),
        Some(Events::new(c.clone(), "edge-b")),
    );
    let want = ["198.51.100.10".to_string(), "203.0.113.7".to_string()];
    for h in [&mut a, &mut b] {
        let (d, _) = wait_desired(h, "both LB VIPs", |d| {
            let mut v = vips(d);
            v.sort();
            v == want
        })
        .await;
        // Each VIP on the instance of its VRID (address mod 50 into 100-149): spread.
        let on: Vec<(String, u8)> = d
            .instances
            .iter()
            .map(|i| (i.name.clone(), i.vrid))
            .collect();
        assert_eq!(
            on,
            [("lb-114".to_string(), 114), ("lb-133".to_string(), 133)]
        );
    }
    // Both raced for the Lease; exactly one holds it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !(a.status.borrow().status_writer || b.status.borrow().status_writer) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("one pod takes the allocator Lease");
    assert!(!(a.status.borrow().status_writer && b.status.borrow().status_writer));
    // The spec-requested VIP is served at once; its status write may still be on its way.
    let recorded = |name: &str| {
        api.get("v1", "Service", Some("web"), name).unwrap()["status"]["loadBalancer"]["ingress"][0]
            ["ip"]
            .as_str()
            .map(str::to_string)
    };
    tokio::time::timeout(Duration::from_secs(5), async {
        while recorded("pinned").is_none() || recorded("front").is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("statuses recorded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let front = api.get("v1", "Service", Some("web"), "front").unwrap();
    assert_eq!(
        front["status"]["loadBalancer"]["ingress"][0]["ip"],
        "198.51.100.10"
    );
    let pinned = api.get("v1", "Service", Some("web"), "pinned").unwrap();
    assert_eq!(
        pinned["status"]["loadBalancer"]["ingress"][0]["ip"],
        "203.0.113.7"
    );
    assert!(api.get("v1", "Service", Some("web"), "metallb").unwrap()["status"]["loadBalancer"]["ingress"].is_null());
    let patches: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .map(|r| format!("{} {}", r.path, r.status))
        .collect();
    assert_eq!(
        patches.len(),
        2,
        "one write per Service, by the writer only: {patches:?}"
    );

    // Churn on non-LoadBalancer Services costs no rebuild and no new state.
    a.desired.borrow_and_update();
    let rebuilds = a.status.borrow().rebuilds;
    for k in 0..50 {
        api.apply(service("apps", &format!("plain-{k}"), false, None, None));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.status.borrow().rebuilds, rebuilds);
    assert!(!a.desired.has_changed().unwrap());
    let us = a.status.borrow().last_rebuild_us;
    eprintln!("last rebuild took {us} µs");

    // Deleting a Service releases its VIP.
    api.delete("v1", "Service", Some("web"), "front");
    wait_desired(&mut a, "front released", |d| vips(d) == ["203.0.113.7"]).await;
    let evs = api.list("events.k8s.io/v1", "Event");
    assert!(
        evs.iter()
            .any(|e| e["reason"] == "VIPAssigned" && e["regarding"]["name"] == "front"),
        "{evs:#?}"
    );
    server.shutdown();
}

fn lease(holder: &str, renewed: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "edgevip-allocator", "namespace": NS},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 2,
            "renewTime": renewed}})
}

/// The allocator Lease decides who writes status: a live holder elsewhere keeps this pod
/// from writing; once the holder stops renewing, this pod takes the Lease over within one
/// lease duration (plus a retry period) and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_writes_status_and_a_dead_holder_is_replaced() {
    use edgevip_k8s::services::DEFAULT_CLASS;
    let api = FakeApi::new();
    let server = api.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    api.apply(node("edge-a", "192.0.2.11", true));
    api.apply(service("web", "front", true, Some(DEFAULT_CLASS), None));
    api.apply(lease("edge-b", "2026-12-05T07:00:00.000000Z"));
    let duration = Duration::from_secs(2);
    let pool = "198.51.100.10-198.51.100.12";
    let o = load_balancers(options(Duration::from_secs(30)), "edge-a", pool, duration);
    let h = controller::start(client(server.addr()), o, resolver(), None);
    let recorded = || {
        api.get("v1", "Service", Some("web"), "front").unwrap()["status"]["loadBalancer"]["ingress"]
            [0]["ip"]
            .as_str()
            .map(str::to_string)
    };
    // edge-b renews every 300 ms for 3 s (longer than the duration): edge-a defers.
    for k in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.apply(lease("edge-b", &format!("2026-12-05T07:00:0{k}.000000Z")));
        assert!(!h.status.borrow().status_writer, "edge-b holds the Lease");
        assert_eq!(recorded(), None, "only the holder writes");
    }
    // edge-b dies: its record stops changing.
    let died = Instant::now();
    let took = tokio::time::timeout(Duration::from_secs(10), async {
        while recorded().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        died.elapsed()
    })
    .await
    .expect("edge-a takes the Lease over and writes");
    eprintln!("status written {took:?} after the holder's last renewal");
    assert!(took >= duration, "not before the Lease expired: {took:?}");
    assert!(
        took < duration * 2,
        "within the duration and a retry: {took:?}"
    );
    assert_eq!(recorded().as_deref(), Some("198.51.100.10"));
    assert!(h.status.borrow().status_writer);
    let lease = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some(NS),
            "edgevip-allocator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "edge-a");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    let patch = api
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.path.ends_with("/services/front/status"))
        .expect("a status patch");
    assert_eq!(patch.status, 200);

    // The Service now asks for an address outside the pool: refused, and the VIP edgevip
    // recorded is cleared (never left in status while nobody serves it).
    let mut front = api.get("v1", "Service", Some("web"), "front").unwrap();
    front["metadata"]["annotations"] = json!({"edgevip.io/vip": "203.0.113.99"});
    api.apply(front);
    tokio::time::timeout(Duration::from_secs(5), async {
        while recorded().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("status cleared once the Service stops qualifying");
}
