use super::*;

fn svc(
    name: &str,
    created: &str,
    class: Option<&str>,
    wanted: Option<&str>,
    status: &[&str],
) -> SvcInfo {
    SvcInfo {
        namespace: "default".into(),
        name: name.into(),
        created: created.into(),
        class: class.map(str::to_string),
        wanted: wanted.map_or(Ok(Vec::new()), |w| parse_list("spec.loadBalancerIP", w)),
        wanted_from: "spec.loadBalancerIP",
        status: status.iter().map(|s| s.parse().unwrap()).collect(),
        ..Default::default()
    }
}

fn any(_: IpAddr) -> Result<(), String> {
    Ok(())
}

fn settings(pool: &str) -> LbSettings {
    LbSettings {
        class: DEFAULT_CLASS.into(),
        default_class: false,
        pool: Pool::parse(pool).unwrap(),
        vrids: 100..=149,
    }
}

/// The plan with the flag's pool only.
fn plan(services: &[SvcInfo], s: &LbSettings, admit: Admit) -> Plan {
    let pools = [PoolDef::from_flag(s.pool.clone())];
    super::plan(services, s, &pools, &BTreeMap::new(), admit)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

#[test]
fn pools_parse_ranges_prefixes_and_singles() {
    let p = Pool::parse("192.0.2.200-192.0.2.202, 203.0.113.0/30,2001:db8::5").unwrap();
    assert!(p.contains("192.0.2.201".parse().unwrap()));
    assert!(!p.contains("192.0.2.203".parse().unwrap()));
    assert!(p.contains("203.0.113.2".parse().unwrap()));
    assert!(
        !p.contains("203.0.113.3".parse().unwrap()),
        "broadcast left out"
    );
    assert!(
        !p.contains("203.0.113.0".parse().unwrap()),
        "network left out"
    );
    assert!(p.contains("2001:db8::5".parse().unwrap()));
    assert!(Pool::parse("192.0.2.9-192.0.2.1").is_err());
    // Whole families: no overflow of the host mask.
    assert!(
        Pool::parse("::/0")
            .unwrap()
            .contains("2001:db8::1".parse().unwrap())
    );
    assert!(
        Pool::parse("0.0.0.0/0")
            .unwrap()
            .contains("192.0.2.1".parse().unwrap())
    );
    assert!(
        Pool::parse("192.0.2.7/32")
            .unwrap()
            .contains("192.0.2.7".parse().unwrap())
    );
    assert!(Pool::parse("192.0.2.0/33").is_err());
    assert!(Pool::parse("x").is_err());
}

#[test]
fn requested_then_recorded_then_allocated_in_creation_order() {
    let s = settings("192.0.2.200-192.0.2.202");
    let services = [
        svc("b-new", "2", Some(DEFAULT_CLASS), None, &[]),
        svc(
            "a-recorded",
            "1",
            Some(DEFAULT_CLASS),
            None,
            &["192.0.2.200"],
        ),
        svc("c-asks", "3", Some(DEFAULT_CLASS), Some("192.0.2.201"), &[]),
        svc("d-new", "4", Some(DEFAULT_CLASS), None, &[]),
        svc("e-none-left", "5", Some(DEFAULT_CLASS), None, &[]),
        svc("other-class", "0", Some("metallb"), None, &[]),
        svc("no-class", "0", None, None, &[]),
    ];
    let p = plan(&services, &s, &any);
    assert_eq!(
        p.serving.get("default/a-recorded"),
        Some(&ips(&["192.0.2.200"]))
    );
    assert_eq!(
        p.serving.get("default/c-asks"),
        Some(&ips(&["192.0.2.201"]))
    );
    assert_eq!(p.writes.get("default/c-asks"), Some(&ips(&["192.0.2.201"])));
    assert_eq!(p.writes.get("default/b-new"), Some(&ips(&["192.0.2.202"])));
    assert!(
        !p.serving.contains_key("default/b-new"),
        "served once recorded"
    );
    assert!(p.problems["default/d-new"].contains("exhausted"));
    assert!(p.problems.contains_key("default/e-none-left"));
    assert!(!p.serving.contains_key("default/other-class"));
    let mut s2 = s.clone();
    s2.default_class = true;
    let p2 = plan(&services, &s2, &any);
    assert!(
        p2.writes.contains_key("default/no-class"),
        "oldest: allocated first"
    );
    assert!(
        p2.problems.contains_key("default/b-new"),
        "the pool ran out earlier"
    );
}

#[test]
fn pending_allocations_hold_their_address_while_others_arrive() {
    let s = settings("192.0.2.200-192.0.2.210");
    let mut late = svc("b", "2", Some(DEFAULT_CLASS), None, &[]);
    late.pending = ips(&["192.0.2.200"]);
    // "a" sorts first but arrives after b's allocation went out: b keeps .200.
    let early = svc("a", "1", Some(DEFAULT_CLASS), None, &[]);
    let p = plan(&[late, early], &s, &any);
    assert_eq!(p.writes["default/b"][0].to_string(), "192.0.2.200");
    assert_eq!(p.writes["default/a"][0].to_string(), "192.0.2.201");
    assert!(p.serving.is_empty(), "nothing served before it is recorded");
}

#[test]
fn conflicts_and_bad_requests_are_problems() {
    let s = settings("192.0.2.50");
    let services = [
        svc("x", "1", Some(DEFAULT_CLASS), Some("192.0.2.50"), &[]),
        svc("y", "2", Some(DEFAULT_CLASS), Some("192.0.2.50"), &[]),
        svc("z", "3", Some(DEFAULT_CLASS), Some("banana"), &[]),
    ];
    let p = plan(&services, &s, &any);
    assert_eq!(p.serving.len(), 1);
    assert!(p.problems["default/y"].contains("already the VIP"));
    assert!(p.problems["default/z"].contains("banana"));
}

fn fam(name: &str, wanted: Option<&str>, f: &[bool], policy: FamilyPolicy) -> SvcInfo {
    SvcInfo {
        families: f.to_vec(),
        policy,
        ..svc(name, name, Some(DEFAULT_CLASS), wanted, &[])
    }
}

#[test]
fn ip_families_choose_the_pool_range_and_refuse_the_other_family() {
    use FamilyPolicy::*;
    let s = settings("192.0.2.200-192.0.2.201,2001:db8::10-2001:db8::11");
    let services = [
        fam("a-v6", None, &[false], SingleStack),
        fam("b-v4", None, &[true], SingleStack),
        fam("c-v6-asks-v4", Some("192.0.2.201"), &[false], SingleStack),
        fam("d-v6-first", None, &[false, true], SingleStack),
    ];
    let p = plan(&services, &s, &any);
    assert_eq!(p.writes["default/a-v6"], ips(&["2001:db8::10"]));
    assert_eq!(p.writes["default/b-v4"], ips(&["192.0.2.200"]));
    assert!(
        p.problems["default/c-v6-asks-v4"].contains("ipFamilies are [\"IPv6\"]"),
        "{p:?}"
    );
    assert_eq!(p.writes["default/d-v6-first"], ips(&["2001:db8::11"]));
    // The IPv6 range is used up: the next IPv6 Service gets no IPv4 address instead.
    let more = [
        services[0].clone(),
        services[3].clone(),
        fam("f-v6", None, &[false], SingleStack),
    ];
    let p = plan(&more, &s, &any);
    assert!(
        p.problems["default/f-v6"].contains("pools of IPv6 this Service may use are exhausted"),
        "{p:?}"
    );
}

#[test]
fn dual_stack_services_get_one_address_per_family_primary_first() {
    use FamilyPolicy::*;
    let s = settings("192.0.2.200-192.0.2.202,2001:db8::10-2001:db8::11");
    let services = [
        fam("a-require", None, &[false, true], RequireDualStack),
        fam("b-prefer", None, &[true, false], PreferDualStack),
        fam("c-require", None, &[true, false], RequireDualStack),
        fam(
            "d-asks-both",
            Some("192.0.2.202,2001:db8::11"),
            &[true, false],
            RequireDualStack,
        ),
        fam("e-asks-taken", Some("192.0.2.202"), &[true], SingleStack),
    ];
    let p = plan(&services, &s, &any);
    assert_eq!(
        p.writes["default/a-require"],
        ips(&["2001:db8::10", "192.0.2.200"])
    );
    // Requests come before allocations, so d has both it asked for although younger.
    assert_eq!(
        p.serving["default/d-asks-both"],
        ips(&["192.0.2.202", "2001:db8::11"])
    );
    // No IPv6 address left: PreferDualStack gets IPv4 alone, with a note.
    assert_eq!(p.writes["default/b-prefer"], ips(&["192.0.2.201"]));
    assert!(
        p.notes["default/b-prefer"].contains("single-stack for now"),
        "{p:?}"
    );
    assert!(
        p.problems["default/c-require"].contains("exhausted"),
        "{p:?}"
    );
    assert!(
        !p.writes.contains_key("default/c-require"),
        "never one family of two"
    );
    assert!(
        p.problems["default/e-asks-taken"].contains("already the VIP of Service d-asks-both"),
        "{p:?}"
    );
    // Recorded, both are served and nothing is written.
    let mut a = services[0].clone();
    a.status = ips(&["2001:db8::10", "192.0.2.200"]);
    let p = plan(&[a.clone()], &s, &any);
    assert_eq!(p.serving["default/a-require"], a.status);
    assert!(p.writes.is_empty());
    // A request naming one family only: RequireDualStack refused, PreferDualStack single.
    let r = fam("r", Some("192.0.2.200"), &[true, false], RequireDualStack);
    let q = fam("q", Some("192.0.2.201"), &[true, false], PreferDualStack);
    let p = plan(&[r, q], &s, &any);
    assert!(
        p.problems["default/r"].contains("names no IPv6 address"),
        "{p:?}"
    );
    assert_eq!(p.writes["default/q"], ips(&["192.0.2.201"]));
}

#[test]
fn status_of_ours_is_cleared_when_a_service_stops_qualifying() {
    let s = settings("192.0.2.200-192.0.2.210");
    let services = [
        // Another controller's class, with an address in our pool: not ours to touch.
        svc("c-metallb", "3", Some("metallb"), None, &["192.0.2.201"]),
        // Ours, asking for an address outside the pool: refused, its status cleared.
        svc(
            "d-refused",
            "4",
            Some(DEFAULT_CLASS),
            Some("203.0.113.9"),
            &["203.0.113.9"],
        ),
        svc("e-fine", "5", Some(DEFAULT_CLASS), None, &["192.0.2.202"]),
    ];
    let p = plan(&services, &s, &any);
    let cleared: Vec<&str> = p.clears.iter().map(String::as_str).collect();
    assert_eq!(cleared, ["default/d-refused"]);
    assert_eq!(p.serving["default/e-fine"][0].to_string(), "192.0.2.202");
}

#[test]
fn annotations_give_requests_pools_and_sharing_keys() {
    let service = |notes: serde_json::Value, families: &[&str]| -> SvcInfo {
        let s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "web", "annotations": notes},
            "spec": {"type": "LoadBalancer", "ipFamilies": families,
                "loadBalancerIP": "192.0.2.99", "externalTrafficPolicy": "Local",
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]}
        }))
        .unwrap();
        SvcInfo::from_service(&s)
    };
    let want = |i: &SvcInfo| -> Result<String, String> {
        let r = i.requests(&i.slots())?;
        Ok(r.iter()
            .flatten()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(","))
    };
    let both = "192.0.2.10, 2001:db8::10";
    let i = service(
        serde_json::json!({"edgevip.io/loadBalancerIPs": both}),
        &["IPv6", "IPv4"],
    );
    assert_eq!(
        want(&i),
        Ok("2001:db8::10".into()),
        "single-stack: the primary"
    );
    assert!(i.local);
    assert_eq!(
        i.ports,
        [("TCP".to_string(), 53), ("UDP".to_string(), 53)].into()
    );
    // MetalLB's annotations, unchanged; the list wins over spec.loadBalancerIP.
    let i = service(
        serde_json::json!({"metallb.io/loadBalancerIPs": both,
            "metallb.io/address-pool": "public", "metallb.io/allow-shared-ip": "dns"}),
        &["IPv4"],
    );
    assert_eq!(want(&i), Ok("192.0.2.10".into()));
    assert_eq!(
        (i.pool.as_deref(), i.sharing.as_deref()),
        (Some("public"), Some("dns"))
    );
    let i = service(
        serde_json::json!({"metallb.io/loadBalancerIPs": "2001:db8::1"}),
        &["IPv4"],
    );
    assert!(
        want(&i).unwrap_err().contains("names no IPv4 address"),
        "{i:?}"
    );
    let i = service(
        serde_json::json!({"edgevip.io/loadBalancerIPs": "192.0.2.1,192.0.2.2"}),
        &[],
    );
    assert!(
        want(&i)
            .unwrap_err()
            .contains("two addresses of one family")
    );
    let i = service(
        serde_json::json!({"edgevip.io/loadBalancerIPs": "banana"}),
        &[],
    );
    assert!(
        want(&i)
            .unwrap_err()
            .contains("edgevip.io/loadBalancerIPs: \"banana\"")
    );
    let i = service(serde_json::json!({}), &["IPv4"]);
    assert_eq!(want(&i), Ok("192.0.2.99".into()));
}

fn shared(name: &str, created: &str, key: &str, ports: &[(&str, i32)]) -> SvcInfo {
    SvcInfo {
        sharing: Some(key.into()),
        ports: ports.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
        ..svc(name, created, Some(DEFAULT_CLASS), None, &[])
    }
}

#[test]
fn services_with_one_sharing_key_share_an_address_when_ports_and_policies_agree() {
    let s = settings("192.0.2.200-192.0.2.210");
    let mut dns_udp = shared("dns-udp", "1", "dns", &[("UDP", 53)]);
    dns_udp.status = ips(&["192.0.2.200"]);
    let services = [
        dns_udp,
        shared("dns-tcp", "2", "dns", &[("TCP", 53)]),
        shared("dns-tcp-again", "3", "dns", &[("TCP", 53)]),
        SvcInfo {
            local: true,
            ..shared("dns-local", "4", "dns", &[("TCP", 853)])
        },
        shared("other-key", "5", "web", &[("TCP", 80)]),
        SvcInfo {
            namespace: "elsewhere".into(),
            ..shared("same-key-other-ns", "6", "dns", &[("TCP", 5353)])
        },
    ];
    let p = plan(&services, &s, &any);
    assert_eq!(p.serving["default/dns-udp"], ips(&["192.0.2.200"]));
    assert_eq!(p.writes["default/dns-tcp"], ips(&["192.0.2.200"]), "{p:?}");
    // A port clash or another traffic policy: its own address.
    assert_eq!(p.writes["default/dns-tcp-again"], ips(&["192.0.2.201"]));
    assert_eq!(p.writes["default/dns-local"], ips(&["192.0.2.202"]));
    assert_eq!(p.writes["default/other-key"], ips(&["192.0.2.203"]));
    assert_eq!(
        p.writes["elsewhere/same-key-other-ns"],
        ips(&["192.0.2.204"])
    );
    // Asking for a shared address: granted with the key, refused without; a Service of
    // another namespace is not named to the asker.
    let mut asks = shared("asks", "7", "dns", &[("TCP", 8053)]);
    asks.wanted = Ok(ips(&["192.0.2.200"]));
    let mut clash = shared("clash", "8", "dns", &[("UDP", 53)]);
    clash.wanted = Ok(ips(&["192.0.2.200"]));
    let mut foreign = svc(
        "foreign",
        "9",
        Some(DEFAULT_CLASS),
        Some("192.0.2.204"),
        &[],
    );
    foreign.namespace = "third".into();
    let mut other_ns = services[5].clone();
    other_ns.status = ips(&["192.0.2.204"]);
    let p = plan(
        &[services[0].clone(), other_ns, asks, clash, foreign],
        &s,
        &any,
    );
    assert_eq!(p.serving["default/asks"], ips(&["192.0.2.200"]));
    assert!(
        p.problems["default/clash"].contains("uses 53/UDP too"),
        "{p:?}"
    );
    assert!(
        p.problems["third/foreign"].contains("already the VIP of a Service of another namespace"),
        "{p:?}"
    );
}

#[test]
fn pools_scope_services_and_a_removed_address_is_withdrawn_and_replaced() {
    use crate::pools::{Scope, Selector};
    let pool = |name: &str, ranges: &str, auto: bool, scope: Scope| PoolDef {
        name: name.into(),
        ranges: Pool::parse(ranges).unwrap(),
        auto_assign: auto,
        scope,
    };
    let web_only = Scope {
        namespaces: Some(["web".to_string()].into()),
        ..Default::default()
    };
    let team_a = Scope {
        namespace_selector: Some(Selector {
            match_labels: [("team".to_string(), "a".to_string())].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pools = [
        pool("web", "192.0.2.10-192.0.2.11", true, web_only),
        pool(
            "reserved",
            "198.51.100.5-198.51.100.6",
            false,
            Scope::default(),
        ),
        pool("team-a", "203.0.113.20", true, team_a),
    ];
    let ns: BTreeMap<String, crate::pools::Labels> = [(
        "default".into(),
        [("team".to_string(), "a".to_string())].into(),
    )]
    .into();
    let s = settings("");
    let in_ns = |ns: &str, name: &str, created: &str| SvcInfo {
        namespace: ns.into(),
        ..svc(name, created, Some(DEFAULT_CLASS), None, &[])
    };
    let named = SvcInfo {
        pool: Some("reserved".into()),
        ..in_ns("web", "named", "4")
    };
    let no_such = SvcInfo {
        pool: Some("nope".into()),
        ..in_ns("web", "no-such", "5")
    };
    let mut asks_reserved = in_ns("other", "asks-reserved", "6");
    asks_reserved.wanted = Ok(ips(&["198.51.100.6"]));
    let mut asks_web = in_ns("other", "asks-web", "7");
    asks_web.wanted = Ok(ips(&["192.0.2.11"]));
    let services = [
        in_ns("web", "w", "1"),
        in_ns("default", "d", "2"),
        in_ns("other", "o", "3"),
        named,
        no_such,
        asks_reserved,
        asks_web,
    ];
    let p = super::plan(&services, &s, &pools, &ns, &any);
    assert_eq!(p.writes["web/w"], ips(&["192.0.2.10"]));
    assert_eq!(
        p.writes["default/d"],
        ips(&["203.0.113.20"]),
        "by namespace labels"
    );
    assert!(
        p.problems["other/o"].contains("no address pool admits this Service for automatic"),
        "{p:?}"
    );
    assert_eq!(
        p.writes["web/named"],
        ips(&["198.51.100.5"]),
        "autoAssign false, named"
    );
    assert!(
        p.problems["web/no-such"].contains("\"nope\" does not exist"),
        "{p:?}"
    );
    // A request for an address of a non-automatic pool is fine; one of a pool scoped to
    // other namespaces is not.
    assert_eq!(p.serving["other/asks-reserved"], ips(&["198.51.100.6"]));
    assert!(
        p.problems["other/asks-web"]
            .contains("192.0.2.11 is not in an address pool this Service may use (reserved)"),
        "{p:?}"
    );
    // The web pool shrinks: w's recorded address is withdrawn and replaced, with a note.
    let mut w = in_ns("web", "w", "1");
    w.status = ips(&["192.0.2.10"]);
    let mut shrunk = pools.clone();
    shrunk[0].ranges = Pool::parse("192.0.2.11").unwrap();
    let p = super::plan(std::slice::from_ref(&w), &s, &shrunk, &ns, &any);
    assert_eq!(p.writes["web/w"], ips(&["192.0.2.11"]));
    assert!(
        !p.serving.contains_key("web/w"),
        "the new one once recorded"
    );
    assert!(p.notes["web/w"].contains("192.0.2.10 withdrawn"), "{p:?}");
    // No pool at all for it: no VIP, status cleared.
    let p = super::plan(std::slice::from_ref(&w), &s, &shrunk[1..], &ns, &any);
    assert!(p.clears.contains("web/w"), "{p:?}");
}

#[test]
fn a_contested_recorded_address_stays_with_the_oldest_claim() {
    let s = settings("192.0.2.200-192.0.2.201");
    let old = svc("old", "1", Some(DEFAULT_CLASS), None, &["192.0.2.200"]);
    let young = svc("young", "2", Some(DEFAULT_CLASS), None, &["192.0.2.200"]);
    for services in [[old.clone(), young.clone()], [young.clone(), old.clone()]] {
        let p = plan(&services, &s, &any);
        assert_eq!(p.serving["default/old"], ips(&["192.0.2.200"]));
        assert_eq!(p.writes["default/young"], ips(&["192.0.2.201"]));
        assert!(!p.serving.contains_key("default/young"));
    }
}

#[test]
fn a_thousand_new_services_are_planned_in_one_pass() {
    // Services listing no family take the pools' first one: IPv6 here.
    let s = settings("2001:db8::/118");
    let services: Vec<SvcInfo> = (0..1000)
        .map(|k| {
            svc(
                &format!("s{k:04}"),
                &format!("{k:04}"),
                Some(DEFAULT_CLASS),
                None,
                &[],
            )
        })
        .collect();
    let t = std::time::Instant::now();
    let p = plan(&services, &s, &any);
    let took = t.elapsed();
    assert_eq!(p.writes.len(), 1000);
    let distinct: BTreeSet<&Vec<IpAddr>> = p.writes.values().collect();
    assert_eq!(distinct.len(), 1000);
    // Each range is walked once (a cursor), not once per Service: generous for debug builds.
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
}

mod properties {
    //! Whatever Services a namespace user creates, in whatever order the watch lists them.
    use proptest::prelude::{Strategy, any as arbitrary, prop_assert, prop_assert_eq, proptest};
    use proptest::test_runner::Config as ProptestConfig;

    use super::*;
    use crate::pools::Scope;

    const ADDRS: [&str; 8] = [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.9",
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8::1",
        "2001:db8::2",
        "203.0.113.1",
    ];
    const PORTS: [(&str, i32); 3] = [("TCP", 53), ("UDP", 53), ("TCP", 80)];

    fn pools() -> Vec<PoolDef> {
        vec![
            PoolDef::from_flag(Pool::parse("192.0.2.1-192.0.2.3,2001:db8::1-2001:db8::2").unwrap()),
            PoolDef {
                name: "a-only".into(),
                ranges: Pool::parse("198.51.100.1-198.51.100.2").unwrap(),
                auto_assign: true,
                scope: Scope {
                    namespaces: Some(["a".to_string()].into()),
                    ..Default::default()
                },
            },
        ]
    }

    fn service() -> impl Strategy<Value = SvcInfo> {
        let addr = proptest::sample::select(&ADDRS[..]);
        (
            (0..2usize, 0..6u8, 0..3usize),
            proptest::option::of(proptest::collection::vec(addr.clone(), 1..3)),
            proptest::collection::vec(addr, 0..3),
            proptest::sample::subsequence(&PORTS[..], 0..=3),
            (arbitrary::<bool>(), 0..4usize),
        )
            .prop_map(
                |((ns, created, key), wanted, status, ports, (local, fam))| {
                    let ip = |s: &&str| s.parse::<IpAddr>().unwrap();
                    let (families, policy) = [
                        (vec![], FamilyPolicy::SingleStack),
                        (vec![true], FamilyPolicy::SingleStack),
                        (vec![false, true], FamilyPolicy::PreferDualStack),
                        (vec![true, false], FamilyPolicy::RequireDualStack),
                    ][fam]
                        .clone();
                    SvcInfo {
                        namespace: ["a", "b"][ns].into(),
                        created: created.to_string(),
                        class: Some(DEFAULT_CLASS.into()),
                        wanted: match wanted {
                            None => Ok(Vec::new()),
                            Some(w) => parse_list("annotation", &w.join(",")),
                        },
                        sharing: [None, Some("k1"), Some("k2")][key].map(str::to_string),
                        ports: ports.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
                        local,
                        status: status.iter().map(ip).collect(),
                        families,
                        policy,
                        ..Default::default()
                    }
                },
            )
    }

    fn services() -> impl Strategy<Value = Vec<SvcInfo>> {
        proptest::collection::vec(service(), 0..14).prop_map(|mut v| {
            for (k, s) in v.iter_mut().enumerate() {
                s.name = format!("s{k}");
            }
            v
        })
    }

    fn run(services: &[SvcInfo]) -> Plan {
        let s = settings("");
        super::super::plan(services, &s, &pools(), &BTreeMap::new(), &any)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn holders_of_one_address_may_share_it_and_the_plan_is_a_fixpoint(
            svcs in services(),
            seed in arbitrary::<u64>(),
        ) {
            let p = run(&svcs);
            let by_key: BTreeMap<String, &SvcInfo> = svcs.iter().map(|s| (s.key(), s)).collect();
            // Every address a Service ends up with: in a pool it may use, one per family.
            let mut holders: BTreeMap<IpAddr, Vec<&SvcInfo>> = BTreeMap::new();
            let pools = pools();
            for (key, ips) in p.serving.iter().chain(&p.writes) {
                let svc = by_key[key];
                prop_assert!(!p.problems.contains_key(key), "{key} served and refused");
                let fams: BTreeSet<bool> = ips.iter().map(IpAddr::is_ipv4).collect();
                prop_assert_eq!(fams.len(), ips.len(), "{} has two of a family: {:?}", key, ips);
                for ip in ips {
                    prop_assert!(
                        pools.iter().any(|pool| pool.ranges.contains(*ip)
                            && pool.scope.admits(svc, &BTreeMap::new())),
                        "{key} got {ip}, outside its pools"
                    );
                    let h = holders.entry(*ip).or_default();
                    if !h.iter().any(|x| x.key() == *key) {
                        h.push(svc);
                    }
                }
            }
            for (ip, h) in &holders {
                for (i, a) in h.iter().enumerate() {
                    for b in &h[i + 1..] {
                        prop_assert!(
                            a.namespace == b.namespace
                                && a.sharing.is_some()
                                && a.sharing == b.sharing
                                && a.local == b.local
                                && a.ports.is_disjoint(&b.ports),
                            "{ip} held by {} and {}, who may not share", a.key(), b.key()
                        );
                    }
                }
            }
            for (key, ips) in &p.writes {
                if by_key[key].policy == FamilyPolicy::RequireDualStack {
                    prop_assert_eq!(ips.len(), 2, "{} RequireDualStack", key);
                }
            }
            // The watch's order changes nothing.
            let mut shuffled = svcs.clone();
            let n = shuffled.len();
            for i in 0..n {
                shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % n);
            }
            prop_assert_eq!(&run(&shuffled), &p);
            // Recorded as planned, the plan settles within a few writes and then nothing
            // moves (allocations survive restarts unchanged). A refusal that frees an
            // address can let another Service take it on the next plan, so one step is
            // not always enough; flapping would never settle.
            let mut view = svcs.clone();
            let mut plan = p.clone();
            let mut settled = None;
            for step in 0..4 {
                if plan.writes.is_empty() && plan.clears.is_empty() {
                    settled = Some(step);
                    break;
                }
                for s in view.iter_mut() {
                    if let Some(ips) = plan.writes.get(&s.key()) {
                        s.status = ips.clone();
                    } else if plan.clears.contains(&s.key()) {
                        s.status.clear();
                    }
                }
                plan = run(&view);
            }
            let brief: Vec<String> = svcs
                .iter()
                .map(|s| format!("{} c{} want{:?} st{:?} fam{:?} {:?} key{:?}", s.key(), s.created, s.wanted, s.status, s.families, s.policy, s.sharing))
                .collect();
            prop_assert!(settled.is_some(), "not settled after 4 writes: {:?}\n{brief:#?}", plan.writes);
            prop_assert_eq!(&run(&view), &plan, "a settled plan stays");
        }
    }
}
