//! The control-plane VIP (issue 11 item 4): `edgevip manifest static-pod` prints a Pod that
//! the Kubernetes API types take field for field, with the DaemonSet's capabilities and a
//! config the validator accepts; and three "control-plane" hosts of the lab, each with an
//! HTTPS `/readyz` standing in for its kube-apiserver, run edgevip from that embedded
//! config (`run --config-env`, as the kubelet would): stopping the master's apiserver moves
//! the VIP in well under a second, and a client's HTTPS requests through the VIP go on.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::VIP4;
use edgevip_lab::{HttpsServer, Pki, https_get};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_edgevip");
/// The bound the issue sets for a stopped apiserver to cost the node its VIP. Measured:
/// 270..473 ms in 10 runs (268..473 in 23 with per-node manifests before) (the check's 200 ms interval × fall 2, then the new master's
/// skew time after the faulting master's priority-0 advert; half the bound).
const MOVE_BOUND: Duration = Duration::from_secs(1);

/// `edgevip manifest static-pod ARGS`: the YAML printed.
fn manifest(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["manifest", "static-pod"])
        .args(args)
        .output()
        .expect("run edgevip");
    assert!(
        out.status.success(),
        "edgevip manifest static-pod {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Differences between the file and the typed object serialized back: a field the API
/// type does not know (misspelled, misplaced) is dropped by serde and shows up here.
fn diff(path: &str, file: &Value, typed: &Value, out: &mut Vec<String>) {
    match (file, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(&p, va, vb, out),
                    None => out.push(format!("{p}: not a field of the API type")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: appeared in the typed object"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if file == typed => {}
        _ => out.push(format!("{path}: file has {file}, typed object has {typed}")),
    }
}

/// The manifest as a Pod, strictly: every field survives the round trip through the type.
fn strict_pod(yaml: &str) -> Pod {
    let value: Value = serde_saphyr::from_str(yaml).expect("YAML");
    assert_eq!(value["apiVersion"], "v1");
    assert_eq!(value["kind"], "Pod");
    let pod: Pod = serde_saphyr::from_str(yaml).expect("a Pod");
    let mut diffs = Vec::new();
    diff("", &value, &serde_json::to_value(&pod).unwrap(), &mut diffs);
    assert!(
        diffs.is_empty(),
        "not a Pod field for field:\n{diffs:#?}\n{yaml}"
    );
    pod
}

/// The config the Pod carries (`run --config-env EDGEVIP_CONFIG`).
fn embedded_config(pod: &Pod) -> String {
    let c = &pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        c.args.as_deref().unwrap(),
        ["run", "--config-env", "EDGEVIP_CONFIG"]
    );
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == "EDGEVIP_CONFIG")
        .and_then(|e| e.value.clone())
        .expect("EDGEVIP_CONFIG in the Pod")
}

#[test]
fn static_pod_manifest_is_a_pod_with_the_daemonsets_capabilities() {
    let yaml = manifest(&[
        "--vip",
        "192.0.2.100/24",
        "--interface",
        "eth0",
        "--peers",
        "192.0.2.12,192.0.2.13",
    ]);
    let pod = strict_pod(&yaml);
    let meta = &pod.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("kube-system"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.host_network,
        Some(true),
        "VRRP and the VIP need the node's network"
    );
    assert_eq!(
        spec.service_account_name, None,
        "a static Pod has no ServiceAccount"
    );
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.containers.len(), 1);

    // The same security context as the DaemonSet's container: capabilities, root, no
    // escalation, read-only root file system, seccomp.
    let ds_text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/05-daemonset.yaml"),
    )
    .unwrap();
    let ds: DaemonSet = serde_saphyr::from_str(&ds_text).expect("the DaemonSet");
    let ds_c = &ds.spec.unwrap().template.spec.unwrap().containers[0];
    let c = &spec.containers[0];
    let caps = |c: &k8s_openapi::api::core::v1::Container| {
        c.security_context
            .as_ref()
            .and_then(|s| s.capabilities.clone())
            .expect("capabilities")
    };
    assert_eq!(caps(c), caps(ds_c));
    assert_eq!(
        caps(c).add.unwrap(),
        ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]
    );
    assert_eq!(c.security_context, ds_c.security_context);
    assert_eq!(c.resources, ds_c.resources);

    // The embedded config passes the validator, and it is what the flags said.
    let cfg = edgevip_config::parse(&embedded_config(&pod)).expect("a valid config");
    let inst = &cfg.instances[0];
    assert_eq!(inst.interface, "eth0");
    assert_eq!(inst.vips[0].to_string(), "192.0.2.100/24");
    assert_eq!(
        inst.unicast_peers,
        [
            "192.0.2.12".parse::<IpAddr>().unwrap(),
            "192.0.2.13".parse().unwrap()
        ]
    );
    let edgevip_config::Probe::Http { url, tls, .. } = &inst.health_checks[0].probe else {
        panic!("an http check: {:?}", inst.health_checks);
    };
    assert_eq!(url, "https://127.0.0.1:6443/readyz");
    assert_eq!(tls.server_name.as_deref(), Some("kubernetes"));
    let ca = tls.ca_file.as_ref().expect("a pinned CA");
    assert_eq!(ca.to_str(), Some("/etc/kubernetes/pki/ca.crt"));
    assert!(!tls.insecure_skip_verify);
    // The CA file reaches the container, read-only, at the path the check reads.
    let mount = &c.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        (ca.to_str().unwrap(), Some(true))
    );
    let vol = &spec.volumes.as_ref().unwrap()[0];
    let host = vol.host_path.as_ref().expect("hostPath");
    assert_eq!(
        (vol.name.as_str(), host.path.as_str()),
        (mount.name.as_str(), ca.to_str().unwrap())
    );
    assert_eq!(host.type_.as_deref(), Some("File"));
    // The API does not take the DaemonSet's 127.0.0.1:9180 (both may run on one node).
    assert_ne!(cfg.api.unwrap().listen.port(), 9180);

    // A bad flag prints nothing and says which field and value.
    let out = Command::new(BIN)
        .args([
            "manifest",
            "static-pod",
            "--vip",
            "192.0.2.1/99",
            "--interface",
            "eth0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("instances[0].vips[0]: \"192.0.2.1/99\" has prefix length \"99\""),
        "{err}"
    );
}

/// Three control-plane hosts, each with its "apiserver" (HTTPS /readyz on 0.0.0.0:6443,
/// a kubeadm-like certificate: `kubernetes`, the node's address and the VIP, not
/// 127.0.0.1) and edgevip run from its own manifest's embedded config. Stopping the
/// master's apiserver moves the VIP; a client's HTTPS GET through the VIP works before
/// and after.
#[test]
fn control_plane_vip_moves_when_the_masters_apiserver_stops() {
    let Some(mut c) = common::cluster("controlplane", 3, false) else {
        return;
    };
    let pki = Pki::new("kubernetes");
    let ca = c.dir().join("ca.crt");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let vip: IpAddr = VIP4.parse().unwrap();
    let addrs: Vec<IpAddr> = (0..3).map(|i| IpAddr::V4(c.lab.host(i).ip4)).collect();
    let mut servers: Vec<HttpsServer> = (0..3)
        .map(|i| {
            HttpsServer::start(
                Some(&c.lab.host(i).ns),
                "0.0.0.0:6443".parse().unwrap(),
                pki.apiserver_config(&[addrs[i], vip]),
            )
            .expect("apiserver stand-in")
        })
        .collect();
    // One manifest for every node, all three listed as peers (as an operator would copy
    // it around): a node's adverts to itself are dropped as its own.
    let peers: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    let yaml = manifest(&[
        "--vip",
        "192.0.2.100/24",
        "--interface",
        "eth0",
        "--peers",
        &peers.join(","),
        "--ca-file",
        ca.to_str().unwrap(),
        "--api-listen",
        common::API,
    ]);
    let config = embedded_config(&strict_pod(&yaml));
    let args: Vec<String> = ["run", "--config-env", "EDGEVIP_CONFIG"]
        .map(String::from)
        .to_vec();
    for i in 0..3 {
        c.start_env(i, &args, &[("EDGEVIP_CONFIG", &config)]);
    }
    let master = c.single_holder(VIP4, None, Duration::from_secs(5));
    let client = pki.client_config();
    let through_vip = SocketAddr::new(vip, 6443);
    let get = |name: &str| {
        https_get(
            c.lab.client_ns(),
            through_vip,
            name,
            "/readyz",
            client.clone(),
            Duration::from_millis(500),
        )
    };
    assert_eq!(get(VIP4), Ok((200, "ok".to_string())), "{}", c.logs());
    assert_eq!(get("kubernetes"), Ok((200, "ok".to_string())));
    // Every host's check has passed a while: the fall count starts from a steady state.
    std::thread::sleep(Duration::from_millis(500));

    let start = Instant::now();
    servers[master].stop();
    let new = c.sole_holder(VIP4, Some(master), Duration::from_secs(3));
    let moved = start.elapsed();
    eprintln!(
        "control-plane VIP: host {master}'s apiserver stopped, host {new} holds the VIP after {} ms",
        moved.as_millis()
    );
    assert!(moved < MOVE_BOUND, "moved after {moved:?}\n{}", c.logs());

    // The client goes on through the VIP (the new master announced it: gratuitous ARP).
    let after = Instant::now();
    let mut last = Err(String::new());
    while after.elapsed() < MOVE_BOUND {
        last = get(VIP4);
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(last, Ok((200, "ok".to_string())), "{}", c.logs());
    eprintln!(
        "control-plane VIP: first HTTPS GET through the VIP after the move: {} ms",
        after.elapsed().as_millis()
    );
    c.single_holder(VIP4, Some(master), Duration::from_secs(2));
    for _ in 0..5 {
        assert_eq!(get(VIP4), Ok((200, "ok".to_string())));
    }
    drop(servers);
}
