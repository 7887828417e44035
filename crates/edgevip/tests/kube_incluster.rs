//! edgevip in Kubernetes mode configured as a pod is: no `--kubeconfig`, the in-cluster
//! configuration (`KUBERNETES_SERVICE_HOST`/`PORT` and the ServiceAccount's token, ca.crt
//! and namespace under /var/run/secrets/kubernetes.io/serviceaccount, mounted in a mount
//! namespace of the daemon's own), the API over HTTPS with RBAC from the shipped manifests.

use std::time::{Duration, Instant};

use edgevip_lab::{API, KubeLab, VIP4};
use serde_json::{Value, json};

const SA: &str = "system:serviceaccount:edgevip:edgevip";

#[test]
fn in_cluster_config_over_tls_as_the_service_account() {
    let Some(mut k) = KubeLab::new_in_cluster("kube_incluster", 1, env!("CARGO_BIN_EXE_edgevip"))
    else {
        return;
    };
    k.set_configmap(json!({VIP4: ""}));
    k.start_node(0, &["--advert-interval", "100ms"]);
    k.wait_ready(Duration::from_secs(15));
    k.cluster.wait_holder(VIP4, 0, Duration::from_secs(5));

    // It synced through the API and recorded its becoming master as an Event on its Node.
    let st: Value = serde_json::from_str(&k.cluster.status_json(0, API)).expect("status");
    assert_eq!(st["kubernetes"]["synced"], true, "{st:#}");
    let start = Instant::now();
    while !k
        .api
        .list("events.k8s.io/v1", "Event")
        .iter()
        .any(|e| e["reason"] == "BecameMaster" && e["regarding"]["name"] == "edge-0")
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no BecameMaster Event: {:#?}\n{}",
            k.api.list("events.k8s.io/v1", "Event"),
            k.cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // With the Node's uid: `kubectl describe node` selects Events by it.
    let node_uid =
        k.api.get("v1", "Node", None, "edge-0").expect("node")["metadata"]["uid"].clone();
    let events = k.api.list("events.k8s.io/v1", "Event");
    let became = events
        .iter()
        .find(|e| e["reason"] == "BecameMaster")
        .expect("BecameMaster");
    assert!(node_uid.is_string());
    assert_eq!(became["regarding"]["uid"], node_uid, "{became:#}");

    // Every request came over TLS with the ServiceAccount's token, and none was refused.
    let log = k.api.requests();
    assert!(log.len() >= 4, "{log:#?}");
    let odd: Vec<_> = log
        .iter()
        .filter(|r| !r.tls || r.user != SA || r.status >= 400)
        .collect();
    assert!(odd.is_empty(), "{odd:#?}\n{}", k.cluster.logs());
}
