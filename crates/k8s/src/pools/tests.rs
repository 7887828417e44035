//! VIPPools read, compared, counted and reported, without an API server.

use serde_json::{Value, json};

use super::*;

fn vippool(name: &str, spec: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec})
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ranges(p: &PoolDef) -> Vec<(String, String)> {
    p.ranges
        .0
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `(field, message)` of each reject, all of them on `VIPPool <name>`.
fn problems(obj: &Value) -> Vec<(String, String)> {
    let name = obj["metadata"]["name"].as_str().unwrap();
    let rejects = from_object(obj).expect_err("refused");
    assert!(
        rejects
            .iter()
            .all(|r| r.object == format!("VIPPool {name}"))
    );
    rejects.into_iter().map(|r| (r.field, r.message)).collect()
}

fn svc(ns: &str, labels: &[(&str, &str)]) -> SvcInfo {
    SvcInfo {
        namespace: ns.into(),
        name: "s".into(),
        created: String::new(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_example_reads_whole() {
    let text = include_str!("../../../../deploy/examples/vippool.yaml");
    let obj: Value = serde_saphyr::from_str(text).unwrap();
    let p = from_object(&obj).unwrap();
    assert_eq!(p.name, "public");
    assert!(p.auto_assign);
    assert_eq!(
        ranges(&p),
        [
            // A /28 without its network and broadcast addresses.
            ("192.0.2.1", "192.0.2.14"),
            ("198.51.100.10", "198.51.100.20"),
            ("203.0.113.7", "203.0.113.7"),
            ("2001:db8:1::", "2001:db8:1::ff"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let scope = &p.scope;
    assert_eq!(scope.namespaces, Some(["web".to_string()].into()));
    let ns = scope.namespace_selector.as_ref().unwrap();
    assert_eq!(ns.match_labels, labels(&[("edgevip.io/pool", "public")]));
    assert_eq!(
        scope.service_selector.as_ref().unwrap().match_expressions,
        [Requirement::In(
            "app".into(),
            ["frontend".to_string()].into()
        )]
    );
    let public = labels(&[("edgevip.io/pool", "public")]);
    assert!(scope.admits(&svc("web", &[("app", "frontend")]), &public));
    assert!(!scope.admits(&svc("web", &[("app", "backend")]), &public));
    assert!(!scope.admits(&svc("shop", &[("app", "frontend")]), &public));
    assert!(!scope.admits(&svc("web", &[("app", "frontend")]), &Labels::new()));
}

#[test]
fn defaults_and_each_operator() {
    let p = from_object(&vippool(
        "v6",
        json!({"addresses": ["2001:db8::10-2001:db8::1f"]}),
    ))
    .unwrap();
    assert!(p.auto_assign, "autoAssign defaults to true");
    assert_eq!(p.scope, Scope::default(), "no serviceAllocation: everyone");
    assert_eq!(size(&p.ranges), 16);

    let p = from_object(&vippool(
        "ops",
        json!({"addresses": ["192.0.2.5"], "autoAssign": false,
            "serviceAllocation": {"serviceSelector": {"matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "public", "operator": "Exists"},
                {"key": "internal", "operator": "DoesNotExist", "values": []}]}}}),
    ))
    .unwrap();
    assert!(!p.auto_assign);
    let sel = p.scope.service_selector.unwrap();
    assert_eq!(
        sel.match_expressions,
        [
            Requirement::NotIn("tier".into(), ["db".to_string()].into()),
            Requirement::Exists("public".into()),
            Requirement::DoesNotExist("internal".into()),
        ]
    );
    assert!(sel.matches(&labels(&[("public", "yes"), ("tier", "web")])));
    assert!(!sel.matches(&labels(&[("public", "yes"), ("tier", "db")])));
    assert!(!sel.matches(&labels(&[("public", "yes"), ("internal", "")])));
    assert!(!sel.matches(&labels(&[("tier", "web")])));
}

#[test]
fn every_problem_names_its_field_and_value() {
    let obj = vippool(
        "bad",
        json!({"addresses": ["192.0.2.0/24", "10.0.0.300", "192.0.2.9-192.0.2.1",
                "2001:db8::/129", "192.0.2.1,192.0.2.2", "", 7, "::/0"],
            "autoAssign": "yes",
            "serviceAllocation": {
                "namespaces": ["web", 3],
                "namespaceSelector": {"matchLabels": {"team": 1}},
                "serviceSelector": {"matchExpressions": [
                    {"key": "app", "operator": "In"},
                    {"key": "app", "operator": "Near", "values": ["x"]},
                    {"key": "app", "operator": "Exists", "values": ["x"]},
                    {"operator": "Exists"}]}}}),
    );
    let got = problems(&obj);
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.addresses[6]",
            "spec.addresses[1]",
            "spec.addresses[2]",
            "spec.addresses[3]",
            "spec.addresses[4]",
            "spec.addresses[5]",
            "spec.addresses[7]",
            "spec.autoAssign",
            "spec.serviceAllocation.namespaces[1]",
            "spec.serviceAllocation.namespaceSelector.matchLabels[\"team\"]",
            "spec.serviceAllocation.serviceSelector.matchExpressions[0].values",
            "spec.serviceAllocation.serviceSelector.matchExpressions[1].operator",
            "spec.serviceAllocation.serviceSelector.matchExpressions[2].values",
            "spec.serviceAllocation.serviceSelector.matchExpressions[3].key",
        ]
    );
    let message = |field: &str| {
        got.iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .unwrap()
    };
    assert!(message("spec.addresses[1]").contains("\"10.0.0.300\""));
    assert!(message("spec.addresses[2]").contains("\"192.0.2.9-192.0.2.1\""));
    assert!(message("spec.addresses[3]").contains("\"2001:db8::/129\""));
    assert!(message("spec.addresses[4]").contains("not one CIDR"));
    assert!(message("spec.addresses[6]").contains("7 is not a string"));
    assert!(message("spec.autoAssign").contains("\"yes\""));
    assert_eq!(
        message("spec.serviceAllocation.serviceSelector.matchExpressions[0].values"),
        "operator In needs values"
    );
    assert!(
        message("spec.serviceAllocation.serviceSelector.matchExpressions[1].operator")
            .contains("\"Near\"")
    );

    // Every spelling of a /0 (an IPv6 one would overflow `Pool::parse`).
    for zero in ["::/0", "::/00", "::/+0", "0.0.0.0/0"] {
        let got = problems(&vippool("z", json!({"addresses": [zero]})));
        assert!(
            got[0].1.contains("a /0 holds every address"),
            "{zero}: {got:?}"
        );
    }

    // No spec, no addresses, an empty list of namespaces.
    assert_eq!(problems(&json!({"metadata": {"name": "x"}}))[0].0, "spec");
    assert_eq!(
        problems(&vippool("x", json!({"autoAssign": true}))),
        [(
            "spec.addresses".to_string(),
            "missing: a pool needs at least one address".to_string()
        )]
    );
    assert_eq!(
        problems(&vippool(
            "x",
            json!({"addresses": ["192.0.2.1"], "serviceAllocation": {"namespaces": []}})
        ))[0]
            .0,
        "spec.serviceAllocation.namespaces"
    );
}

#[test]
fn hostile_sizes_are_refused_not_read() {
    let many: Vec<String> = (0..=MAX_ADDRESSES)
        .map(|i| format!("10.{}.{}.1", i / 256, i % 256))
        .collect();
    let got = problems(&vippool("big", json!({"addresses": many})));
    assert_eq!(
        got,
        [(
            "spec.addresses".to_string(),
            format!("{} entries: at most {MAX_ADDRESSES}", MAX_ADDRESSES + 1)
        )]
    );
    let ok: Vec<String> = many[..MAX_ADDRESSES].to_vec();
    assert!(from_object(&vippool("fits", json!({"addresses": ok}))).is_ok());

    let labels: serde_json::Map<String, Value> = (0..=MAX_SELECTOR_ENTRIES)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    let got = problems(&vippool(
        "sel",
        json!({"addresses": ["192.0.2.1"],
            "serviceAllocation": {"serviceSelector": {"matchLabels": labels}}}),
    ));
    assert_eq!(
        got[0].0,
        "spec.serviceAllocation.serviceSelector.matchLabels"
    );
    let values: Vec<String> = (0..=MAX_SELECTOR_ENTRIES).map(|i| i.to_string()).collect();
    let got = problems(&vippool(
        "vals",
        json!({"addresses": ["192.0.2.1"], "serviceAllocation": {"namespaceSelector":
            {"matchExpressions": [{"key": "k", "operator": "In", "values": values}]}}}),
    ));
    assert_eq!(
        got[0].0,
        "spec.serviceAllocation.namespaceSelector.matchExpressions[0].values"
    );
    // A long bad value is cut in the message.
    let long = "9".repeat(5000);
    let got = problems(&vippool("long", json!({"addresses": [long]})));
    assert!(got[0].1.len() < 5000 * 2 + 100, "{}", got[0].1.len());
}

fn pool(name: &str, spec: &str) -> PoolDef {
    PoolDef {
        name: name.into(),
        ranges: Pool::parse(spec).unwrap(),
        auto_assign: true,
        scope: Scope::default(),
    }
}

#[test]
fn overlapping_pools_are_reported_per_pair() {
    let pools = [
        PoolDef::from_flag(Pool::parse("192.0.2.10-192.0.2.20").unwrap()),
        pool("a", "192.0.2.20-192.0.2.30,2001:db8::/120"),
        pool("b", "198.51.100.1,2001:db8::ff"),
        pool("c", "192.0.2.31-192.0.2.40,198.51.100.2"),
        // The same address in one pool twice: not an overlap between pools.
        pool("d", "203.0.113.1,203.0.113.1"),
    ];
    let found: Vec<(String, String)> = overlaps(&pools)
        .into_iter()
        .map(|r| (r.object, r.message))
        .collect();
    assert_eq!(
        found,
        [
            (
                "VIPPool a".to_string(),
                "overlaps --address-pool: 192.0.2.20 (at least) is in both; it counts as --address-pool's".to_string()
            ),
            (
                "VIPPool b".to_string(),
                "overlaps VIPPool a: 2001:db8::ff (at least) is in both; it counts as a's".to_string()
            ),
        ]
    );
    // A long first range still overlaps a later one past the ranges in between.
    let found = overlaps(&[
        pool("wide", "10.0.0.0-10.0.255.255,10.0.0.5"),
        pool("late", "10.0.200.1"),
    ]);
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("10.0.200.1"), "{found:?}");
    // Many pools, many ranges each: quick, one warning per pair.
    let many: Vec<PoolDef> = (0..50)
        .map(|k| {
            let list: Vec<String> = (0..MAX_ADDRESSES)
                .map(|i| format!("10.{}.{}.1", i / 256, i % 256))
                .collect();
            pool(&format!("p{k}"), &list.join(","))
        })
        .collect();
    assert_eq!(overlaps(&many).len(), 50 * 49 / 2);
    // IPv4 and IPv6 numbers alike are not the same address.
    assert!(overlaps(&[pool("x", "0.0.0.1"), pool("y", "::1")]).is_empty());
}

#[test]
fn usage_counts_each_address_once_in_its_first_pool() {
    let pools = [
        pool("a", "192.0.2.1-192.0.2.4"),
        pool("b", "192.0.2.4-192.0.2.9,192.0.2.8-192.0.2.12"),
        pool("v6", "2001:db8::/64"),
        pool("all", "::/1,8000::/1"),
    ];
    let used = [
        "192.0.2.4",
        "192.0.2.4",
        "192.0.2.5",
        "2001:db8::1",
        "203.0.113.9",
    ]
    .map(ip);
    let u = usage(&pools, used.into_iter());
    assert_eq!(
        u["a"],
        PoolUse {
            allocated: 1,
            size: 4
        }
    );
    assert_eq!(u["b"].allocated, 1);
    assert_eq!(u["b"].size, 9, "overlapping entries counted once");
    assert_eq!(u["v6"].size, 1 << 64);
    assert_eq!(u["v6"].free(), (1 << 64) - 1);
    assert_eq!(u["all"].size, u128::MAX, "saturates");
    assert_eq!(u["all"].allocated, 0, "2001:db8::1 counts in v6, first");
    assert_eq!(size(&Pool::default()), 0);
}

#[test]
fn status_free_is_an_integer_while_it_fits_int64() {
    let small = PoolStatus::valid(&PoolUse {
        allocated: 2,
        size: 16,
    });
    let j = small.to_json(&Value::Null, "2026-12-05T12:00:00Z");
    assert_eq!(j["allocated"], 2);
    assert_eq!(j["free"], 14);
    let big = PoolStatus::valid(&PoolUse {
        allocated: 1,
        size: 1 << 64,
    });
    let j = big.to_json(&Value::Null, "2026-12-05T12:00:00Z");
    assert_eq!(j["free"], "18446744073709551615");
    assert_eq!(PoolStatus::observed(&j), big, "read back the same");
    let edge = PoolStatus::valid(&PoolUse {
        allocated: 0,
        size: i64::MAX as u128,
    });
    assert_eq!(
        edge.to_json(&Value::Null, "t")["free"],
        json!(i64::MAX),
        "i64::MAX still fits"
    );
}

#[test]
fn ready_keeps_its_transition_time_until_its_status_changes() {
    let t0 = "2026-12-05T12:00:00Z";
    let t1 = "2026-12-05T12:05:00Z";
    let ok = PoolStatus::valid(&PoolUse {
        allocated: 0,
        size: 4,
    });
    let first = ok.to_json(&json!({}), t0);
    assert_eq!(first["conditions"][0]["lastTransitionTime"], t0);
    assert_eq!(first["conditions"][0]["status"], "True");
    assert_eq!(PoolStatus::observed(&first), ok);

    // Counts move: the condition did not transition.
    let busier = PoolStatus::valid(&PoolUse {
        allocated: 3,
        size: 4,
    });
    assert_ne!(PoolStatus::observed(&first), busier, "a write is due");
    let second = busier.to_json(&first, t1);
    assert_eq!(second["conditions"][0]["lastTransitionTime"], t0);

    // Refused: False since now, with why; another writer's condition stays.
    let mut existing = second.clone();
    existing["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Audited", "status": "True"}));
    let bad = PoolStatus::invalid(&[Reject {
        object: "VIPPool p".into(),
        field: "spec.addresses[0]".into(),
        message: "\"x\" is not an address".into(),
    }]);
    let third = bad.to_json(&existing, t1);
    let conds = third["conditions"].as_array().unwrap();
    assert_eq!(conds[0]["type"], "Audited");
    assert_eq!(
        conds[1],
        json!({"type": "Ready", "status": "False", "reason": "InvalidSpec",
            "message": "spec.addresses[0]: \"x\" is not an address", "lastTransitionTime": t1})
    );
    assert_eq!(
        (third["allocated"].clone(), third["free"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(PoolStatus::observed(&third), bad);
    assert_eq!(PoolStatus::observed(&Value::Null), PoolStatus::default());
}

/// `announce: bgp` pools are refused whole (never quietly served over VRRP); `arp` is the
/// default and reads as before.
#[test]
fn an_announce_bgp_pool_is_refused_not_served_over_vrrp() {
    let arp = vippool(
        "a",
        json!({"addresses": ["192.0.2.0/30"], "announce": "arp"}),
    );
    assert!(from_object(&arp).is_ok());
    let bgp = vippool(
        "b",
        json!({"addresses": ["192.0.2.0/30"], "announce": "bgp"}),
    );
    let p = problems(&bgp);
    assert_eq!(p[0].0, "spec.announce", "{p:?}");
    assert!(p[0].1.contains("not served yet"), "{p:?}");
    let bad = vippool("c", json!({"addresses": ["192.0.2.0/30"], "announce": 7}));
    assert_eq!(problems(&bad)[0].1, "7 is not arp or bgp");
}
