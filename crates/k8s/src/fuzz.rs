//! The ConfigMap parsers' fuzz harnesses, shared by the cargo-fuzz targets (`fuzz/`) and
//! the corpus test that runs in CI without cargo-fuzz. Each runs the parser and then the
//! whole desired-state build of a fixed three-node cluster on it. `vippool_one` runs the
//! VIPPool reader and what is computed from a pool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use edgevip_config::{Defaults, HealthCheck, Instance};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};

use crate::desired::{Builder, COMPAT_INSTANCE, Desired, Settings, Source};
use crate::eligibility::IngressCheck;
use crate::nodes::NodeInfo;
use crate::trust::{Cidr, NodeLink};
use crate::{compat, rich};

/// Input: ConfigMap data, one `key=value` per line (a key cannot hold `=` or a newline,
/// which real VIP keys never do). Besides not panicking: every key is either an entry or an
/// error, never both; the build serves only parsed VIPs and is stable when repeated.
pub fn configmap_compat_one(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        map.insert(k.to_string(), v.to_string());
    }
    let (entries, errors) = compat::parse(&map, &[rich::KEY]);
    let skipped = usize::from(map.contains_key(rich::KEY));
    assert_eq!(entries.len() + errors.len() + skipped, map.len());
    let parsed: BTreeSet<IpAddr> = entries.iter().map(|e| e.vip).collect();
    for e in &entries {
        assert!(
            map.keys().any(|k| k.trim().parse() == Ok(e.vip)),
            "{} comes from no key",
            e.vip
        );
    }
    for (key, message) in &errors {
        assert!(map.contains_key(key), "error for a key not given: {key:?}");
        assert!(!message.is_empty(), "empty message for {key:?}");
    }
    let d = build_twice(0, map);
    if let Some(vips) = d.instances.iter().find(|i| i.name == COMPAT_INSTANCE) {
        for v in &vips.vips {
            assert!(parsed.contains(&v.addr), "{} served but not parsed", v.addr);
        }
    }
}

/// Input: one selector byte (which rights and settings the DaemonSet gives), then the
/// `edgevip.yaml` document. Besides not panicking: each document entry is one instance or
/// one reject, and every instance built re-validates on its own.
pub fn configmap_rich_one(data: &[u8]) {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let doc = rich::parse(text);
    let map = BTreeMap::from([(rich::KEY.to_string(), text.to_string())]);
    let d = build_twice(sel, map);
    let Ok(doc) = doc else {
        assert_eq!(d.rejects.len(), 1, "a broken document is one reject");
        assert!(d.instances.is_empty());
        return;
    };
    assert!(d.instances.len() <= doc.instances.len());
    // Names may repeat in the document (the second is refused), so rejects are at least the
    // entries that built nothing.
    assert!(d.instances.len() + d.rejects.len() >= doc.instances.len());
}

/// Three edge nodes, this one `edge-a`; `sel` picks the rights and settings.
fn settings(sel: u8) -> Settings {
    let bit = |n: u8| sel & (1 << n) != 0;
    let mut trust = crate::trust::Trust::default();
    trust.configmap.interfaces = bit(0);
    trust.configmap.peers = bit(1);
    trust.configmap.remote_checks = bit(2);
    trust.configmap.exec = bit(3);
    trust.configmap.ttl = bit(3);
    if bit(4) {
        trust.vip_ranges = vec![
            Cidr::new([192, 0, 2, 0].into(), 24),
            Cidr::new("2001:db8::".parse().unwrap(), 64),
            Cidr::new([198, 51, 100, 0].into(), 24),
        ];
    }
    Settings {
        node_name: "edge-a".into(),
        vrid: 50,
        interface: None,
        unicast: bit(5),
        advert_interval: Duration::from_millis(200),
        preempt: bit(6),
        ingress_check: if bit(7) {
            IngressCheck::Always(HealthCheck::http(
                "ingress",
                "http://127.0.0.1:10254/healthz",
            ))
        } else {
            IngressCheck::Off
        },
        eligibility: Default::default(),
        lb: None,
        forwarding: bit(2),
        bgp: None,
        proxy_header: edgevip_forward::ProxyHeader::V1,
        trust,
    }
}

/// A Node with these InternalIPs, as read (also the desired-state tests' fixture).
pub(crate) fn node(name: &str, addrs: &[&str]) -> NodeInfo {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.status = Some(NodeStatus {
        addresses: Some(
            addrs
                .iter()
                .map(|a| NodeAddress {
                    type_: "InternalIP".into(),
                    address: a.to_string(),
                })
                .collect(),
        ),
        ..Default::default()
    });
    NodeInfo::from_node(&n)
}

/// Builds the desired state twice with one builder: the second build, with the first one
/// serving, must give the same instances (a build that moves on its own would flap VIPs).
fn build_twice(sel: u8, data: BTreeMap<String, String>) -> Desired {
    let s = settings(sel);
    let nodes = [
        node("edge-a", &["192.0.2.11", "2001:db8::11"]),
        node("edge-b", &["192.0.2.12", "2001:db8::12"]),
        node("edge-c", &["192.0.2.9"]),
    ];
    let link = NodeLink::named("eth0", &["192.0.2.11/24", "2001:db8::11/64"]);
    let src = Source {
        object: "ConfigMap edgevip/vips".into(),
        data,
    };
    let mut b = Builder::default();
    let d = b.build(&s, &nodes, &link, Some(&src), Default::default());
    check_desired(&d);
    let again = b.build(&s, &nodes, &link, Some(&src), Default::default());
    assert_eq!(again.instances, d.instances, "a repeated build differs");
    d
}

fn check_desired(d: &Desired) {
    let errs = edgevip_config::check_instances(&d.instances);
    assert!(errs.is_empty(), "accepted instances clash: {errs:?}");
    for r in d.rejects.iter().chain(&d.warnings) {
        assert!(!r.message.is_empty(), "empty message for {}", r.field);
    }
    for inst in &d.instances {
        let raw = edgevip_config::fuzz::to_raw(inst);
        let again = Instance::from_raw("again", raw, &Defaults::default())
            .unwrap_or_else(|e| panic!("instance {:?} does not re-validate:\n{e}", inst.name));
        assert_eq!(
            &again, inst,
            "instance {:?} changes when written back",
            inst.name
        );
    }
}

/// Input: a VIPPool as JSON (as the API server sends it). Besides not panicking: a pool is
/// read or refused with problems on its own object and `spec` fields; a read pool has
/// addresses (within the bound, low to high in one family), overlaps a copy of itself,
/// and counts its own addresses as allocated; every status reads back as written.
pub fn vippool_one(data: &[u8]) {
    use crate::pools::{self, MAX_ADDRESSES, PoolStatus};
    let Ok(obj) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    let status = match pools::from_object(&obj) {
        Ok(p) => {
            assert_eq!(p.name, name);
            let r = &p.ranges.0;
            assert!(
                !r.is_empty() && r.len() <= MAX_ADDRESSES,
                "{} ranges",
                r.len()
            );
            for (a, b) in r {
                assert_eq!(a.is_ipv4(), b.is_ipv4(), "{a}-{b}");
                assert!(a <= b, "{a}-{b}");
            }
            let size = pools::size(&p.ranges);
            assert!(size >= 1);
            let mut copy = p.clone();
            copy.name = format!("{name}-copy");
            assert!(!pools::overlaps(&[p.clone(), copy]).is_empty());
            let lows: BTreeSet<IpAddr> = r.iter().map(|(a, _)| *a).collect();
            let u = pools::usage(std::slice::from_ref(&p), lows.iter().copied());
            assert_eq!(u[name].allocated, lows.len() as u64);
            assert_eq!(u[name].size, size);
            PoolStatus::valid(&u[name])
        }
        Err(rejects) => {
            assert!(!rejects.is_empty());
            for r in &rejects {
                assert_eq!(r.object, format!("VIPPool {name}"));
                assert!(r.field.starts_with("spec"), "{r}");
                assert!(!r.message.is_empty(), "{r}");
            }
            PoolStatus::invalid(&rejects)
        }
    };
    let written = status.to_json(&obj["status"], "2026-01-01T00:00:00Z");
    assert_eq!(PoolStatus::observed(&written), status);
}
