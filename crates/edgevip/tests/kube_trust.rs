//! Trust boundaries in Kubernetes mode, end to end (issue 10, item 1): what a ConfigMap
//! editor or a namespace user asks for beyond "this VIP serves that Service" is refused
//! with a Warning Event, and nothing else changes. Lab hosts sit on 192.0.2.0/24 (edge-i
//! is 192.0.2.(11+i)); the default VIP ranges are that on-link subnet.

mod common;

use std::time::{Duration, Instant};

use common::{VIP4, lb_service, recorded};
use edgevip_lab::KubeLab;
use serde_json::json;

const POOL: &str = "192.0.2.200-192.0.2.210";

fn lab(test: &str, nodes: usize) -> Option<KubeLab> {
    KubeLab::new(test, nodes, env!("CARGO_BIN_EXE_edgevip"))
}

/// Waits (bounded) for a Warning Event on `kind`/`name` whose note contains every `want`.
fn wait_warning(k: &KubeLab, kind: &str, name: &str, want: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let evs = k.api.list("events.k8s.io/v1", "Event");
        let notes: Vec<String> = evs
            .iter()
            .filter(|e| e["type"] == "Warning" && e["regarding"]["kind"] == kind)
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| format!("{}: {}", e["reason"], e["note"]))
            .collect();
        if let Some(n) = notes.iter().find(|n| want.iter().all(|w| n.contains(w))) {
            return n.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no Warning on {kind} {name} with {want:?}: {notes:#?}\n{}",
            k.cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_configmap_carrying_commands_is_refused_while_the_other_entries_serve() {
    let Some(mut k) = lab("kube_trust_cm", 1) else {
        return;
    };
    let marker = format!("/tmp/edgevip-kube-trust-{}", std::process::id());
    let doc = format!(
        "instances:\n  - {{name: web, vrid: 61, vips: [192.0.2.120/24]}}\n  - {{name: evil, vrid: 62, vips: [192.0.2.121/24], notify: [/bin/sh, -c, 'touch {marker}']}}\n  - {{name: probe, vrid: 63, vips: [192.0.2.122/24], health_checks: [{{exec: [/bin/sh, -c, 'touch {marker}']}}]}}\n"
    );
    // The API refuses "fe80::1" as a key (colons); a link-local IPv4 one passes it.
    k.set_configmap(json!({VIP4: "", "169.254.0.1": "", "edgevip.yaml": doc}));
    k.start_node(0, &["--advert-interval", "100ms"]);
    k.wait_ready(Duration::from_secs(15));
    k.cluster.wait_holder(VIP4, 0, Duration::from_secs(5));
    k.cluster
        .wait_holder("192.0.2.120", 0, Duration::from_secs(5));
    let n = wait_warning(
        &k,
        "ConfigMap",
        "vips",
        &["instances[1].notify", &marker, "--allow-configmap-exec"],
    );
    eprintln!("{n}");
    wait_warning(
        &k,
        "ConfigMap",
        "vips",
        &["instances[2].health_checks[0].exec"],
    );
    wait_warning(
        &k,
        "ConfigMap",
        "vips",
        &["data[\\\"169.254.0.1\\\"]", "link-local"],
    );
    for refused in ["192.0.2.121", "192.0.2.122"] {
        assert!(k.cluster.holders(refused).is_empty(), "{refused} served");
    }
    assert!(
        !std::path::Path::new(&marker).exists(),
        "a ConfigMap command ran"
    );
    k.cluster
        .assert_stays("192.0.2.120", 0, Duration::from_millis(500));
    // A later, different refusal is an Event of its own: the recorder would otherwise
    // count it as a repeat of the first (same reason and object) and keep the old note.
    k.set_configmap(json!({VIP4: "", "169.254.0.1": "", "127.0.0.2": "", "edgevip.yaml": doc}));
    wait_warning(
        &k,
        "ConfigMap",
        "vips",
        &["data[\\\"127.0.0.2\\\"]", "cannot be a virtual IP"],
    );
}

#[test]
fn services_requesting_a_node_address_or_one_outside_the_pool_are_refused_alone() {
    let Some(mut k) = lab("kube_trust_lb", 2) else {
        return;
    };
    for i in 0..2 {
        k.start_node(
            i,
            &[
                "--advert-interval",
                "100ms",
                "--load-balancers",
                "--address-pool",
                POOL,
            ],
        );
    }
    k.wait_ready(Duration::from_secs(15));
    k.api.apply(lb_service("pinned", Some("192.0.2.205")));
    k.api.apply(lb_service("auto", None));
    let m = k
        .cluster
        .single_holder("192.0.2.205", None, Duration::from_secs(5));
    // Each VIP on its own instance (VRIDs 139 and 134): masters of their own.
    let m200 = k
        .cluster
        .single_holder("192.0.2.200", None, Duration::from_secs(5));
    let other = 1 - m;
    let other_ip = format!("192.0.2.{}", 11 + other);

    // A namespace user asks for the other node's address, and for one outside the pool.
    k.cluster.start_probe("192.0.2.205");
    k.api.apply(lb_service("node", Some(&other_ip)));
    k.api.apply(lb_service("outside", Some("203.0.113.7")));
    k.api.apply(lb_service("loopback", Some("127.0.0.1")));
    let n = wait_warning(&k, "Service", "node", &[&other_ip, "a node's address"]);
    eprintln!("{n}");
    wait_warning(
        &k,
        "Service",
        "outside",
        &["203.0.113.7", "not in an address pool this Service may use"],
    );
    wait_warning(&k, "Service", "loopback", &["127.0.0.1", "loopback"]);
    k.cluster
        .assert_stays("192.0.2.205", m, Duration::from_secs(1));
    assert_eq!(k.cluster.holders("192.0.2.200"), [m200]);
    assert_eq!(
        k.cluster.holders(&other_ip),
        [other],
        "only the node holds its address"
    );
    assert!(k.cluster.holders("203.0.113.7").is_empty());
    let report = k.cluster.stop_probe();
    assert!(
        report.longest_gap < Duration::from_millis(500),
        "{report:?}"
    );
    for name in ["node", "outside", "loopback"] {
        assert_eq!(recorded(&k, name), None, "{name} got a VIP");
    }
    assert_eq!(recorded(&k, "auto").as_deref(), Some("192.0.2.200"));
}

#[test]
fn a_configmap_vrid_in_the_lb_range_moves_only_the_lb_vip_beside_it() {
    let Some(mut k) = lab("kube_trust_vrid", 1) else {
        return;
    };
    // 192.0.2.200, the pool's first address, maps to VRID 94 of the default --lb-vrids
    // 100-149 (3221226184 mod 50 = 34): the ConfigMap takes 134 first.
    k.set_configmap(json!({"edgevip.yaml":
        "instances:\n  - {name: ingress, vrid: 134, vips: [192.0.2.150/24]}\n"}));
    k.start_node(
        0,
        &[
            "--advert-interval",
            "100ms",
            "--load-balancers",
            "--address-pool",
            POOL,
        ],
    );
    k.wait_ready(Duration::from_secs(15));
    k.cluster
        .wait_holder("192.0.2.150", 0, Duration::from_secs(5));
    k.cluster.start_probe("192.0.2.150");
    k.api.apply(lb_service("front", None));
    let allocated = common::wait(&k, "status written", 10, || recorded(&k, "front"));
    assert_eq!(allocated, "192.0.2.200");
    k.cluster.wait_holder(&allocated, 0, Duration::from_secs(5));
    k.cluster
        .assert_stays("192.0.2.150", 0, Duration::from_secs(1));
    let report = k.cluster.stop_probe();
    assert!(
        report.longest_gap < Duration::from_millis(500),
        "{report:?}"
    );
    let st = common::status(&k.cluster, 0);
    let mut vrids: Vec<(String, u8)> = st
        .instances
        .iter()
        .map(|i| (i.name.clone(), i.vrid))
        .collect();
    vrids.sort();
    assert_eq!(
        vrids,
        [("ingress".to_string(), 134), ("lb-135".to_string(), 135)],
        "{st:#?}"
    );
}

#[test]
fn adverts_from_an_address_no_node_lists_raise_a_warning_event() {
    let Some(mut k) = lab("kube_trust_peer", 1) else {
        return;
    };
    k.set_configmap(json!({VIP4: ""}));
    k.start_node(0, &["--advert-interval", "100ms"]);
    k.wait_ready(Duration::from_secs(15));
    // A host on the segment that is no edge node (the lab's client) sends adverts for the
    // compat instance's VRID (50) to edge-0, every 100 ms, until the Event is there.
    let me = k.cluster.lab.client().ip4;
    let to = k.cluster.lab.host(0).ip4;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let halt = stop.clone();
    let sender = edgevip_lab::in_netns(k.cluster.lab.client_ns(), move || {
        let bytes = common::advert(50, me, to, 100);
        let s = common::raw_vrrp_socket(me);
        let dst: std::net::SocketAddr = std::net::SocketAddrV4::new(to, 0).into();
        // Bounded: at most 30 s of adverts.
        for _ in 0..300 {
            if halt.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let _ = s.send_to(&bytes, &dst.into());
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .expect("client namespace");
    let start = Instant::now();
    let found = loop {
        let evs = k.api.list("events.k8s.io/v1", "Event");
        if let Some(e) = evs.iter().find(|e| {
            e["reason"] == "AdvertsNotFromPeers"
                && e["type"] == "Warning"
                && e["regarding"]["name"] == "edge-0"
        }) {
            break Some((
                start.elapsed(),
                e["note"].as_str().unwrap_or("").to_string(),
            ));
        }
        if start.elapsed() > Duration::from_secs(25) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sender.join();
    let Some((after, note)) = found else {
        panic!("no AdvertsNotFromPeers Event\n{}", k.cluster.logs());
    };
    eprintln!("after {after:?}: {note}");
    assert!(note.contains("not_a_peer"), "{note}");
    // The stranger moved nothing: edge-0 serves the VIP.
    assert_eq!(k.cluster.holders(VIP4), [0]);
}
