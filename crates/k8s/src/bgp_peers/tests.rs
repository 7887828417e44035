use serde_json::json;

use super::*;

fn peer(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": spec})
}

fn good(name: &str, addr: &str) -> PeerDef {
    from_object(&peer(
        name,
        json!({"myASN": 64512, "peerASN": 64501, "peerAddress": addr}),
    ))
    .unwrap()
}

fn fields(r: &[Reject]) -> Vec<String> {
    r.iter()
        .map(|r| format!("{}: {}", r.field, r.message))
        .collect()
}

#[test]
fn a_full_peer_reads_every_field() {
    let d = from_object(&peer(
        "tor-a",
        json!({
            "myASN": 64512, "peerASN": 64501, "peerAddress": "192.0.2.1", "peerPort": 1179,
            "routerID": "192.0.2.11", "holdTime": "9s", "keepaliveTime": "3s",
            "passwordSecret": {"name": "tor-a-bgp"},
            "bfd": {"interval": "100ms", "multiplier": 3}, "ebgpMultiHop": 2,
            "nodeSelector": {"matchLabels": {"rack": "a"}},
        }),
    ))
    .unwrap();
    assert_eq!(d.my_asn, 64512);
    assert_eq!(d.router_id, Some("192.0.2.11".parse().unwrap()));
    assert_eq!(
        d.password,
        Some(SecretRef {
            name: "tor-a-bgp".into(),
            key: "password".into()
        })
    );
    let labels: Labels = [("rack".to_string(), "a".to_string())].into();
    assert!(d.node_selector.as_ref().unwrap().matches(&labels));
    assert!(!d.node_selector.as_ref().unwrap().matches(&Labels::new()));
    let secrets = [(
        "tor-a-bgp".to_string(),
        [("password".to_string(), b"s3cret".to_vec())].into(),
    )]
    .into();
    let me = NodeView {
        labels: &labels,
        ipv4: Some("192.0.2.21".parse().unwrap()),
    };
    let (bgp, rejects) = for_node(&[&d], &me, &secrets, "edgevip", &BgpSettings::default());
    assert!(rejects.is_empty(), "{rejects:?}");
    let bgp = bgp.unwrap();
    assert_eq!(bgp.asn, 64512);
    assert_eq!(bgp.router_id, "192.0.2.11".parse::<Ipv4Addr>().unwrap());
    let p = &bgp.peers[0];
    assert_eq!(
        (p.asn, p.port, p.password.as_deref()),
        (64501, 1179, Some("s3cret"))
    );
    assert_eq!(p.hold_time, Duration::from_secs(9));
    assert_eq!(p.bfd.unwrap().interval, Duration::from_millis(100));
    assert_eq!(p.ebgp_multihop, Some(2));
}

#[test]
fn bad_values_are_refused_with_the_objects_field_names() {
    let r = from_object(&peer(
        "bad",
        json!({
            "myASN": 23456, "peerASN": 0, "peerAddress": "224.0.0.5", "peerPort": 70000,
            "holdTime": "2s", "bfd": {"interval": "5ms", "multipler": 3},
            "ebgpMultiHop": "two", "routerID": "::1", "bfdProfile": "fast",
        }),
    ))
    .unwrap_err();
    let got = fields(&r);
    for want in [
        "spec.myASN: 23456 is AS_TRANS",
        "spec.peerASN:",
        "spec.peerAddress: \"224.0.0.5\" is not a unicast",
        "spec.peerPort:",
        "spec.holdTime:",
        "spec.bfd.interval: 5ms is out of range",
        "spec.bfd.multipler: is not a BFD field",
        "spec.ebgpMultiHop: \"two\" is not an integer",
        "spec.routerID: \"::1\"",
        "spec.bfdProfile: is not a BGPPeer field",
    ] {
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "{want} not in {got:#?}"
        );
    }
    assert!(r.iter().all(|r| r.object == "BGPPeer bad"));
    assert!(from_object(&json!({"metadata": {"name": "x"}, "spec": 3})).is_err());
    let missing = fields(&from_object(&peer("m", json!({}))).unwrap_err());
    for want in ["spec.myASN: is required", "spec.peerAddress: is required"] {
        assert!(
            missing.iter().any(|g| g == want),
            "{want} not in {missing:#?}"
        );
    }
}

#[test]
fn a_node_gets_the_peers_that_select_it_with_one_local_asn() {
    let a = good("a", "192.0.2.1");
    let mut b = good("b", "2001:db8::1");
    b.node_selector = Some(Selector {
        match_labels: [("rack".to_string(), "b".to_string())].into(),
        ..Default::default()
    });
    let mut c = good("c", "192.0.2.3");
    c.my_asn = 64999;
    let d = good("d", "192.0.2.1");
    let rack_a: Labels = [("rack".to_string(), "a".to_string())].into();
    let me = NodeView {
        labels: &rack_a,
        ipv4: Some("192.0.2.21".parse().unwrap()),
    };
    let (bgp, rejects) = for_node(
        &[&a, &b, &c, &d],
        &me,
        &BTreeMap::new(),
        "edgevip",
        &BgpSettings::default(),
    );
    let bgp = bgp.unwrap();
    assert_eq!(bgp.router_id, "192.0.2.21".parse::<Ipv4Addr>().unwrap());
    let addrs: Vec<String> = bgp.peers.iter().map(|p| p.address.to_string()).collect();
    assert_eq!(
        addrs,
        ["192.0.2.1"],
        "b selects rack b; c has another ASN; d repeats a"
    );
    let got = fields(&rejects);
    assert!(
        got[0].starts_with("spec.myASN: 64999 differs from a's 64512"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("spec.peerAddress: 192.0.2.1 is also"),
        "{got:?}"
    );
    // No peer selects it: no BGP at all.
    let (none, _) = for_node(
        &[&b],
        &me,
        &BTreeMap::new(),
        "edgevip",
        &BgpSettings::default(),
    );
    assert!(none.is_none());
}

#[test]
fn a_missing_or_bad_password_leaves_that_peer_out_without_echoing_it() {
    let mut a = good("a", "192.0.2.1");
    a.password = Some(SecretRef {
        name: "pw".into(),
        key: "password".into(),
    });
    let b = good("b", "192.0.2.2");
    let labels = Labels::new();
    let me = NodeView {
        labels: &labels,
        ipv4: Some("192.0.2.21".parse().unwrap()),
    };
    let (bgp, rejects) = for_node(
        &[&a, &b],
        &me,
        &BTreeMap::new(),
        "edgevip",
        &BgpSettings::default(),
    );
    assert_eq!(bgp.unwrap().peers.len(), 1);
    assert!(fields(&rejects)[0].contains("Secret edgevip/pw has no key \"password\""));
    let secrets = [(
        "pw".to_string(),
        [("password".to_string(), b"has space".to_vec())].into(),
    )]
    .into();
    let (_, rejects) = for_node(&[&a], &me, &secrets, "edgevip", &BgpSettings::default());
    let got = fields(&rejects);
    assert!(
        got[0].starts_with("spec.passwordSecret: (9 bytes)"),
        "{got:?}"
    );
    assert!(!got[0].contains("has space"));
    // No IPv4 InternalIP and no routerID: no BGP, said on the peer.
    let v6 = NodeView {
        labels: &labels,
        ipv4: None,
    };
    let (none, rejects) = for_node(
        &[&b],
        &v6,
        &BTreeMap::new(),
        "edgevip",
        &BgpSettings::default(),
    );
    assert!(none.is_none());
    assert_eq!(rejects[0].field, "spec.routerID");
}
