//! The README's Kubernetes steps on the lab (issue 11): the `deploy/` objects loaded into
//! the fake API server as `kubectl apply -k deploy/` would load them, the daemon run with
//! the DaemonSet's own arguments (in-cluster config, the ServiceAccount's RBAC), ingress
//! pods on the pod network with nothing on the nodes' health port, then the ConfigMap
//! created as the README says: the VIP is up and serving through NAT within 2 s.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgevip_lab::{KubeLab, VIP4};
use serde_json::{Value, json};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The objects of `deploy/kustomization.yaml`, in its order, as JSON.
fn deploy_objects() -> Vec<Value> {
    let read = |f: &str| std::fs::read_to_string(deploy().join(f)).expect(f);
    let k: Value = serde_saphyr::from_str(&read("kustomization.yaml")).expect("kustomization");
    let mut out = Vec::new();
    for r in k["resources"].as_array().expect("resources") {
        let file = r.as_str().expect("a file name");
        for doc in edgevip_deploy_check::split_documents(&read(file)) {
            out.push(serde_saphyr::from_str(&doc).unwrap_or_else(|e| panic!("{file}: {e}")));
        }
    }
    out
}

/// The DaemonSet container's arguments for node `i`, with `$(VAR)` filled in as the
/// kubelet does from the downward API.
fn daemonset_args(objects: &[Value], node: &str, host_ip: &str) -> Vec<String> {
    let ds = objects
        .iter()
        .find(|o| o["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            a.as_str()
                .expect("string arg")
                .replace("$(NODE_NAME)", node)
                .replace("$(HOST_IP)", host_ip)
        })
        .collect()
}

#[test]
fn the_readme_steps_serve_a_pod_network_ingress_within_2s_of_the_configmap() {
    let bin = env!("CARGO_BIN_EXE_edgevip");
    let Some(mut k) = KubeLab::new_in_cluster("readme", 2, bin) else {
        return;
    };
    // kubectl apply -k deploy/: what the fake API server stores; RBAC kinds it does not
    // serve are enforced from the same files (Rbac::shipped).
    let objects = deploy_objects();
    for o in &objects {
        if let Err(e) = k.api.try_apply(o.clone()) {
            let kind = o["kind"].as_str().unwrap_or_default();
            assert!(
                kind.ends_with("Role") || kind.ends_with("RoleBinding"),
                "{kind} {}: {e}",
                o["metadata"]["name"]
            );
        }
    }
    // The ingress (ingress-nginx's controller Service) on the pod network.
    k.add_pods(2);
    k.set_service("ingress-nginx", "ingress-nginx-controller");
    k.set_endpoints("ingress-nginx", "ingress-nginx-controller", &[0, 1]);
    for i in 0..2 {
        k.stop_ingress(i);
        let node = KubeLab::node_name(i);
        let ip = k.cluster.lab.host(i).ip4.to_string();
        k.cluster
            .start_args(i, &daemonset_args(&objects, &node, &ip));
    }
    // Ready (the kubelet's readiness probe) without any VIP ConfigMap.
    let start = Instant::now();
    while !(0..2).all(|i| {
        let addr = format!("{}:9180", k.cluster.lab.host(i).ip4);
        k.cluster
            .http_get_at(i, &addr, "/readyz")
            .is_some_and(|r| r.0 == 200)
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "not ready\n{}",
            k.cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(k.cluster.holders(VIP4).is_empty(), "no ConfigMap, no VIP");

    // kubectl -n edgevip create configmap edgevip-vips --from-literal=VIP=ns/svc
    let created = Instant::now();
    k.api.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "edgevip-vips", "namespace": "edgevip"},
        "data": {VIP4: "ingress-nginx/ingress-nginx-controller"}}));
    let target = SocketAddr::new(VIP4.parse().unwrap(), 80);
    let took = k.wait_served(target, created, Duration::from_secs(2));
    eprintln!("README steps: ConfigMap created -> VIP served through NAT in {took:?}");
    k.cluster.single_holder(VIP4, None, Duration::from_secs(2));
    let refused: Vec<_> = k
        .api
        .requests()
        .into_iter()
        .filter(|r| r.status >= 400)
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}
