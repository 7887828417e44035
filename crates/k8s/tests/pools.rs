//! VIPPools through the real controller and the fake API server, with the shipped CRD and
//! RBAC: read live, refused with an Event naming the field, status recorded by the
//! allocator; and a cluster without the CRD served all the same.

use std::time::Duration;

use edgevip_fakeapi::{ADMIN_TOKEN, FakeApi, Rbac};
mod common;

use common::{load_balancers, options, resolver};
use edgevip_k8s::controller::{self, Handle, KubeStatus, Options};
use edgevip_k8s::events::Events;
use edgevip_k8s::services::DEFAULT_CLASS;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const CRD: &str = include_str!("../../../deploy/crds/vippool.yaml");

fn lb_options() -> Options {
    let pool = "198.51.100.10-198.51.100.12";
    load_balancers(
        options(Duration::from_secs(30)),
        "edge-a",
        pool,
        Duration::from_secs(3),
    )
}

/// The fake API server with an edge node; clients as edgevip (RBAC from the shipped
/// manifests) and as an admin (for what only an operator does: CRDs, VIPPools).
async fn cluster() -> (FakeApi, edgevip_fakeapi::Server, kube::Client, kube::Client) {
    let api = FakeApi::new();
    let server = api.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    api.apply(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "edge-a", "labels": {"edgenode": "true"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}],
            "conditions": [{"type": "Ready", "status": "True"}]}}));
    let edgevip = kube::Client::try_from(edgevip_fakeapi::kube_config(server.addr())).unwrap();
    let admin = kube::Client::try_from(edgevip_fakeapi::kube_config_as(server.addr(), ADMIN_TOKEN))
        .unwrap();
    (api, server, edgevip, admin)
}

async fn install_crd(admin: &kube::Client) {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(CRD).expect("the shipped CRD");
    Api::<CustomResourceDefinition>::all(admin.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("CRD created");
}

fn pools(admin: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(admin.clone(), &edgevip_k8s::pools::api_resource())
}

async fn create_pool(admin: &kube::Client, name: &str, spec: Value) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "edgevip.io/v1alpha1",
        "kind": "VIPPool", "metadata": {"name": name}, "spec": spec}))
    .unwrap();
    pools(admin)
        .create(&PostParams::default(), &obj)
        .await
        .expect("VIPPool created")
}

/// Waits (bounded) until the published status satisfies `f`.
async fn wait_status(h: &mut Handle, secs: u64, what: &str, f: impl Fn(&KubeStatus) -> bool) {
    let r = tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            if f(&h.status.borrow_and_update()) {
                return;
            }
            h.status.changed().await.expect("controller alive");
        }
    })
    .await;
    if r.is_err() {
        panic!(
            "timed out waiting for {what}; status: {:#?}",
            h.status.borrow()
        );
    }
}

/// Polls (every 20 ms, bounded) until `f` holds.
async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let r = tokio::time::timeout(Duration::from_secs(secs), async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(r.is_ok(), "timed out waiting for {what}");
}

fn addresses(st: &KubeStatus, pool: &str) -> Option<Vec<String>> {
    st.pools
        .iter()
        .find(|p| p.name == pool)
        .map(|p| p.addresses.clone())
}

/// The value at a printer column's `jsonPath` (`.a.b`), as `kubectl get` reads it.
fn at<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.')
        .split('.')
        .fold(obj, |v, k| &v[k])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vippools_are_read_live_refused_with_an_event_and_their_status_recorded() {
    let (api, server, edgevip, admin) = cluster().await;
    // Recorded before (by an allocator that used this pool): it counts as the pool's.
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "front", "namespace": "web"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": DEFAULT_CLASS, "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9", "ipMode": "VIP"}]}}}));
    install_crd(&admin).await;
    // A /30 without its network and broadcast addresses: two.
    create_pool(&admin, "blue", json!({"addresses": ["203.0.113.8/30"]})).await;
    let mut h = controller::start(
        edgevip.clone(),
        lb_options(),
        resolver(),
        Some(Events::new(edgevip, "edge-a")),
    );
    wait_status(&mut h, 10, "blue read", |s| {
        s.synced && addresses(s, "blue").is_some()
    })
    .await;
    let st = h.status.borrow().clone();
    assert_eq!(
        addresses(&st, "blue").unwrap(),
        ["203.0.113.9-203.0.113.10"]
    );
    assert_eq!(st.pools[0].name, "--address-pool", "the flag's pool first");
    assert!(!st.vippool_crd_missing);

    // The allocator (this pod, alone) records the pool's use.
    let status = |name: &str| {
        api.get("edgevip.io/v1alpha1", "VIPPool", None, name)
            .map(|p| p["status"].clone())
            .unwrap_or_default()
    };
    eventually(10, "blue's status", || status("blue")["allocated"] == 1).await;
    let s = status("blue");
    assert_eq!(s["free"], 1);
    assert_eq!(s["conditions"][0]["type"], "Ready");
    assert_eq!(s["conditions"][0]["status"], "True");
    let since = s["conditions"][0]["lastTransitionTime"].clone();
    assert!(since.is_string());

    // Edited live: an IPv6 /64 more; free no longer fits int64: a decimal string.
    pools(&admin)
        .patch(
            "blue",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"addresses": ["203.0.113.8/30", "2001:db8::/64"]}})),
        )
        .await
        .expect("edit");
    wait_status(&mut h, 10, "blue edited", |s| {
        addresses(s, "blue").is_some_and(|a| a.len() == 2)
    })
    .await;
    eventually(10, "blue's new free count", || {
        status("blue")["free"] == "18446744073709551617"
    })
    .await;
    let blue = api
        .get("edgevip.io/v1alpha1", "VIPPool", None, "blue")
        .unwrap();
    assert_eq!(
        blue["status"]["conditions"][0]["lastTransitionTime"], since,
        "still Ready: the transition time stays"
    );
    // What `kubectl get vippools` shows from the status is filled in.
    let crd: Value = serde_saphyr::from_str(CRD).unwrap();
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap();
    let from_status: Vec<&str> = columns
        .iter()
        .filter_map(|c| c["jsonPath"].as_str())
        .filter(|p| p.starts_with(".status."))
        .collect();
    assert_eq!(from_status, [".status.allocated", ".status.free"]);
    for path in from_status {
        assert!(!at(&blue, path).is_null(), "{path} empty in {blue:#}");
    }

    // A refused pool: no addresses, a Warning Event on it naming the field and the value,
    // Ready False in its status.
    let red = create_pool(
        &admin,
        "red",
        json!({"addresses": ["198.51.100.200", "203.0.113.300"]}),
    )
    .await;
    wait_status(&mut h, 10, "red refused", |s| {
        s.rejected.iter().any(|r| r.object == "VIPPool red")
    })
    .await;
    assert_eq!(addresses(&h.status.borrow(), "red"), None);
    eventually(10, "the InvalidPool Event", || {
        api.list("events.k8s.io/v1", "Event")
            .iter()
            .any(|e| e["reason"] == "InvalidPool")
    })
    .await;
    let events = api.list("events.k8s.io/v1", "Event");
    let invalid: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "InvalidPool")
        .collect();
    assert_eq!(invalid.len(), 1, "{events:#?}");
    let e = invalid[0];
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["regarding"]["kind"], "VIPPool");
    assert_eq!(e["regarding"]["apiVersion"], "edgevip.io/v1alpha1");
    assert_eq!(e["regarding"]["name"], "red");
    assert_eq!(
        e["regarding"]["uid"].as_str(),
        red.metadata.uid.as_deref(),
        "kubectl describe finds it by uid"
    );
    let note = e["note"].as_str().unwrap();
    assert!(
        note.contains("spec.addresses[1]") && note.contains("203.0.113.300"),
        "{note}"
    );
    eventually(10, "red's status", || {
        status("red")["conditions"][0]["reason"] == "InvalidSpec"
    })
    .await;
    let s = status("red");
    assert_eq!(s["conditions"][0]["status"], "False");
    assert!(
        s["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("203.0.113.300")
    );

    // Fixed: read, Ready again.
    pools(&admin)
        .patch(
            "red",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"addresses": ["198.51.100.200"]}})),
        )
        .await
        .expect("fix");
    wait_status(&mut h, 10, "red fixed", |s| {
        addresses(s, "red").is_some() && s.rejected.is_empty()
    })
    .await;
    eventually(10, "red Ready", || {
        status("red")["conditions"][0]["status"] == "True"
    })
    .await;

    // Status written only when it changes: a quiet period writes nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let patches = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.contains("/vippools/"))
            .count()
    };
    let before = patches(&api);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(patches(&api), before);
    assert!(
        api.requests()
            .iter()
            .filter(|r| r.path.contains("/vippools"))
            .all(|r| r.status < 400 || r.status == 409),
        "{:#?}",
        api.requests()
    );
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_the_daemon_serves_and_reads_pools_once_it_is_installed() {
    let (api, server, edgevip, admin) = cluster().await;
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "front", "namespace": "web"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": DEFAULT_CLASS, "ports": [{"port": 80}]}}));
    let mut h = controller::start(edgevip, lb_options(), resolver(), None);
    // Synced and serving from --address-pool, though listing VIPPools says 404.
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(d) = h.desired.borrow_and_update().clone()
                && d.instances
                    .iter()
                    .any(|i| i.vips.iter().any(|v| v.addr.to_string() == "198.51.100.10"))
            {
                return;
            }
            h.desired.changed().await.unwrap();
        }
    })
    .await;
    assert!(served.is_ok(), "status: {:#?}", h.status.borrow());
    let st = h.status.borrow().clone();
    assert!(st.synced && st.vippool_crd_missing, "{st:#?}");
    assert_eq!(st.pools.len(), 1);
    assert!(
        api.requests()
            .iter()
            .any(|r| r.path == "/apis/edgevip.io/v1alpha1/vippools" && r.status == 404)
    );

    // Installed later: read within the watch's backoff, no restart.
    install_crd(&admin).await;
    create_pool(
        &admin,
        "late",
        json!({"addresses": ["203.0.113.20-203.0.113.29"]}),
    )
    .await;
    wait_status(&mut h, 40, "the late pool", |s| {
        addresses(s, "late").is_some() && !s.vippool_crd_missing
    })
    .await;

    // A VIPPool watch that fails otherwise (here: a 403) keeps the pools it had.
    let mut docs = Rbac::shipped_documents();
    for (_, d) in &mut docs {
        for rule in d["rules"].as_array_mut().into_iter().flatten() {
            if rule["resources"] == json!(["vippools"]) {
                rule["verbs"] = json!(["get"]);
            }
        }
    }
    api.set_rbac(Rbac::from_documents(&docs).unwrap());
    api.compact();
    api.close_watches();
    eventually(10, "the VIPPool list refused", || {
        api.requests()
            .iter()
            .any(|r| r.path == "/apis/edgevip.io/v1alpha1/vippools" && r.status == 403)
    })
    .await;
    // Another change rebuilds: the pool is still there.
    let rebuilds = h.status.borrow().rebuilds;
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "back", "namespace": "web"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": DEFAULT_CLASS, "ports": [{"port": 80}]}}));
    wait_status(&mut h, 10, "a rebuild", |s| s.rebuilds > rebuilds).await;
    let st = h.status.borrow().clone();
    assert!(addresses(&st, "late").is_some(), "{st:#?}");
    assert!(st.watch_errors > 0);
    server.shutdown();
}
