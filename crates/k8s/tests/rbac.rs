//! The real controller against the fake API server enforcing RBAC from the shipped
//! manifests (deploy/02-clusterrole.yaml, deploy/03-role.yaml and
//! deploy/optional/loadbalancer-rbac.yaml), as edgevip's ServiceAccount over HTTPS:
//! everything it does is allowed, and every permission it uses is needed (a copy of the
//! manifests without it fails with the apiserver's 403 naming the resource).

use std::time::{Duration, Instant};

use edgevip_fakeapi::{FakeApi, Rbac, Request, Server};
mod common;

use common::{load_balancers, resolver};
use edgevip_k8s::controller::{self, Handle, Options};
use edgevip_k8s::events::Events;
use edgevip_k8s::services::DEFAULT_CLASS;
use serde_json::{Value, json};

const SA: &str = "system:serviceaccount:edgevip:edgevip";

/// Every feature that needs a permission: LoadBalancer mode (Lease, status), forwarding.
fn options() -> Options {
    let pool = "198.51.100.10-198.51.100.12";
    let mut o = common::options(Duration::from_secs(30));
    o.settings.forwarding = true;
    load_balancers(o, "edge-a", pool, Duration::from_secs(3))
}

/// A cluster where the controller uses every permission: edge Nodes, its ConfigMap (with
/// a bad entry, so it records a Warning Event), a forwarded Service with endpoints, and a
/// LoadBalancer Service whose VIP it records in the status (then an Event on it).
fn cluster(api: &FakeApi) {
    for (name, ip) in [("edge-a", "192.0.2.11"), ("edge-b", "192.0.2.12")] {
        api.apply(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"edgenode": "true"}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                "conditions": [{"type": "Ready", "status": "True"}]}}));
    }
    api.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "vips", "namespace": "edgevip"},
        "data": {"192.0.2.100": "web/front", "bad-key": ""}}));
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "front", "namespace": "web"},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}));
    api.apply(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "front-a", "namespace": "web",
            "labels": {"kubernetes.io/service-name": "front"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.51.100.101"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
    );
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "lb", "namespace": "web"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": DEFAULT_CLASS, "ports": [{"port": 443}]}}));
    // The VIPPool CRD and one pool: read, and its status written by the allocator.
    let crd: Value = serde_saphyr::from_str(include_str!("../../../deploy/crds/vippool.yaml"))
        .expect("the shipped CRD");
    api.apply(crd);
    api.apply(
        json!({"apiVersion": "edgevip.io/v1alpha1", "kind": "VIPPool",
        "metadata": {"name": "blue"}, "spec": {"addresses": ["203.0.113.8/30"]}}),
    );
}

async fn start(policy: Rbac) -> (FakeApi, Server, Handle) {
    let api = FakeApi::new();
    api.set_rbac(policy);
    cluster(&api);
    let server = api
        .bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let client = kube::Client::try_from(server.kube_config()).expect("client");
    let h = controller::start(
        client.clone(),
        options(),
        resolver(),
        Some(Events::new(client, "edge-a")),
    );
    (api, server, h)
}

/// Polls (every 20 ms, at most `secs`) until `f` holds for the request log.
async fn wait_log(api: &FakeApi, secs: u64, f: impl Fn(&[Request]) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f(&api.requests()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Requests that failed (a 404 is an answer: the allocator Lease before its creation).
fn refused(log: &[Request]) -> Vec<String> {
    log.iter()
        .filter(|r| r.status >= 400 && r.status != 404)
        .map(|r| format!("{} {} -> {} {:?}", r.method, r.path, r.status, r.error))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_manifests_allow_everything_the_controller_does() {
    let (api, server, h) = start(Rbac::shipped()).await;
    // Done when the VIP is recorded in the LB Service's status, the pool's use in the
    // VIPPool's, and both Events exist.
    let done = wait_log(&api, 10, |_| {
        let recorded = api
            .get("v1", "Service", Some("web"), "lb")
            .is_some_and(|s| s["status"]["loadBalancer"]["ingress"][0]["ip"] == "198.51.100.10")
            && api
                .get("edgevip.io/v1alpha1", "VIPPool", None, "blue")
                .is_some_and(|p| p["status"]["free"] == 2);
        let reasons: Vec<Value> = api
            .list("events.k8s.io/v1", "Event")
            .iter()
            .map(|e| e["reason"].clone())
            .collect();
        recorded
            && reasons.contains(&json!("VIPAssigned"))
            && reasons.contains(&json!("RejectedEntry"))
    })
    .await;
    // A request is logged once answered: give the last Event's answer a moment.
    wait_log(&api, 2, |log| {
        log.iter().filter(|r| r.path.ends_with("/events")).count() >= 2
    })
    .await;
    let log = api.requests();
    assert!(
        done,
        "status: {:?}\nevents: {:#?}\nrefused: {:#?}",
        h.status.borrow(),
        api.list("events.k8s.io/v1", "Event"),
        refused(&log)
    );
    assert!(h.status.borrow().synced);
    assert_eq!(refused(&log), Vec::<String>::new());
    // All of it over TLS as the ServiceAccount: list+watch of the four kinds, the status
    // patch, Event creates.
    assert!(log.iter().all(|r| r.tls && r.user == SA), "{log:#?}");
    for (method, path) in [
        ("GET", "/api/v1/nodes"),
        ("GET", "/api/v1/namespaces/edgevip/configmaps"),
        ("GET", "/api/v1/services"),
        ("GET", "/apis/discovery.k8s.io/v1/endpointslices"),
        ("GET", "/apis/edgevip.io/v1alpha1/vippools"),
        ("GET", "/api/v1/namespaces"),
        ("PATCH", "/api/v1/namespaces/web/services/lb/status"),
        ("PATCH", "/apis/edgevip.io/v1alpha1/vippools/blue/status"),
        (
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/edgevip/leases",
        ),
        ("POST", "/apis/events.k8s.io/v1/namespaces/web/events"),
        ("POST", "/apis/events.k8s.io/v1/namespaces/edgevip/events"),
    ] {
        assert!(
            log.iter().any(|r| r.method == method && r.path == path),
            "no {method} {path} in {log:#?}"
        );
    }
    // What the manifests grant that this run never used (least privilege: a candidate to
    // drop, unless the daemon needs it elsewhere, e.g. patching an Event series).
    let used: Vec<(String, String)> = log.iter().map(verb_and_resource).collect();
    let mut unused = Vec::new();
    for (_, d) in Rbac::shipped_documents() {
        for rule in d["rules"].as_array().into_iter().flatten() {
            for res in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    let (res, verb) = (
                        res.as_str().unwrap_or_default(),
                        verb.as_str().unwrap_or_default(),
                    );
                    if !used.iter().any(|(v, r)| v == verb && r == res) {
                        unused.push(format!("{verb} {res}"));
                    }
                }
            }
        }
    }
    unused.sort();
    unused.dedup();
    eprintln!("granted but not used in this run: {unused:?}");
    server.shutdown();
}

/// (RBAC verb, resource[/subresource]) of a logged request.
fn verb_and_resource(r: &Request) -> (String, String) {
    let segs: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segs.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [res] => (res.to_string(), false),
        [res, _] => (res.to_string(), true),
        [res, _, sub] => (format!("{res}/{sub}"), true),
        _ => (String::new(), false),
    };
    let verb = match (r.method.as_str(), named) {
        ("GET", _) if r.is_watch() => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "",
    };
    (verb.to_string(), resource)
}

/// The shipped documents with `verb` taken out of every rule on `resource` (of `group`).
fn without(group: &str, resource: &str, verb: &str) -> Rbac {
    let mut docs = Rbac::shipped_documents();
    let mut removed = 0;
    for (_, d) in &mut docs {
        for rule in d["rules"].as_array_mut().into_iter().flatten() {
            let on =
                |k: &str, v: &str| rule[k].as_array().is_some_and(|a| a.iter().any(|x| x == v));
            if on("apiGroups", group) && on("resources", resource) {
                let verbs = rule["verbs"].as_array_mut().expect("verbs");
                let before = verbs.len();
                verbs.retain(|v| v != verb);
                removed += before - verbs.len();
            }
        }
    }
    assert!(removed > 0, "the manifests never grant {verb} {resource}");
    Rbac::from_documents(&docs).expect("policy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusterrole_without_list_on_nodes_fails_with_403() {
    let (api, server, h) = start(without("", "nodes", "list")).await;
    let want = format!(
        "nodes is forbidden: User \"{SA}\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let seen = wait_log(&api, 5, |log| {
        log.iter()
            .any(|r| r.status == 403 && r.error.as_deref() == Some(want.as_str()))
    })
    .await;
    assert!(seen, "no 403 on nodes: {:#?}", refused(&api.requests()));
    // The controller cannot sync: it never produces a desired state.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.status.borrow().synced);
    assert!(h.desired.borrow().is_none());
    server.shutdown();
}

/// Every permission the controller uses is needed: without it, a 403 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_permission_the_controller_uses_is_needed() {
    for (group, resource, verb, path_has) in [
        ("", "nodes", "watch", "/api/v1/nodes"),
        ("", "configmaps", "list", "/configmaps"),
        ("", "configmaps", "watch", "/configmaps"),
        ("", "services", "list", "/api/v1/services"),
        ("", "services", "watch", "/api/v1/services"),
        (
            "discovery.k8s.io",
            "endpointslices",
            "list",
            "/endpointslices",
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            "watch",
            "/endpointslices",
        ),
        ("", "services", "get", "/services/lb"),
        ("", "services/status", "patch", "/services/lb/status"),
        ("edgevip.io", "vippools", "list", "/vippools"),
        ("edgevip.io", "vippools", "watch", "/vippools"),
        ("edgevip.io", "vippools", "get", "/vippools/blue"),
        (
            "edgevip.io",
            "vippools/status",
            "patch",
            "/vippools/blue/status",
        ),
        ("", "namespaces", "list", "/api/v1/namespaces"),
        ("", "namespaces", "watch", "/api/v1/namespaces"),
        ("coordination.k8s.io", "leases", "create", "/leases"),
        (
            "coordination.k8s.io",
            "leases",
            "get",
            "/leases/edgevip-allocator",
        ),
        (
            "coordination.k8s.io",
            "leases",
            "update",
            "/leases/edgevip-allocator",
        ),
        ("events.k8s.io", "events", "create", "/events"),
    ] {
        let (api, server, _h) = start(without(group, resource, verb)).await;
        let phrase = format!("cannot {verb} resource \"{resource}\" in API group \"{group}\"");
        let seen = wait_log(&api, 5, |log| {
            log.iter().any(|r| {
                r.status == 403
                    && r.path.contains(path_has)
                    && r.error.as_deref().is_some_and(|e| e.contains(&phrase))
            })
        })
        .await;
        assert!(
            seen,
            "without {verb} {resource}: no 403 ({phrase}): {:#?}",
            refused(&api.requests())
        );
        server.shutdown_and_wait().await;
    }
}
