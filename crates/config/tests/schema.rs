//! The documented schema parses; every kind of mistake is reported with path and value.

use std::time::Duration;

use edgevip_config::{Announce, Track, Version, parse};

const FULL: &str = r#"
api:
  listen: 127.0.0.1:9180        # /healthz, /status, /metrics; optional
instances:
  - name: ingress               # unique, [a-z0-9-]
    interface: eth0
    vrid: 51                    # 1..255
    priority: 150               # 1..255, 255 = address owner
    version: 3                  # 3 (default) or 2
    advert_interval: 100ms      # default 1s
    preempt: true               # default true
    preempt_delay: 0s
    vips: [192.0.2.100/24]      # IPv4 and/or IPv6
    unicast_peers: []           # empty: multicast
    auth_pass: ""               # v2 only
    track_interfaces: []        # e.g. [{name: eth1, weight: -60}]; no weight: fault
"#;

fn errors(yaml: &str) -> Vec<String> {
    parse(yaml)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn the_documented_example_parses() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.api.unwrap().listen, "127.0.0.1:9180".parse().unwrap());
    let i = &c.instances[0];
    assert_eq!(
        (i.name.as_str(), i.interface.as_str(), i.vrid, i.priority),
        ("ingress", "eth0", 51, 150)
    );
    assert_eq!(i.version, Version::V3);
    assert_eq!(i.advert_interval, Duration::from_millis(100));
    assert!(i.preempt && i.handoff && i.v3_checksum_pseudo_header);
    assert_eq!(i.vips[0].to_string(), "192.0.2.100/24");
    assert!(i.unicast_peers.is_empty() && i.auth_pass.is_none() && i.track_interfaces.is_empty());
    assert_eq!(i.announce, Announce::default());
    assert_eq!(i.unicast_min_ttl, 255);
}

#[test]
fn defaults_apply() {
    let c =
        parse("instances:\n  - {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1]}\n").unwrap();
    let i = &c.instances[0];
    assert_eq!(i.priority, 100);
    assert_eq!(i.advert_interval, Duration::from_secs(1));
    assert_eq!(i.vips[0].prefix_len, 32);
    assert!(c.api.is_none());
}

#[test]
fn empty_file_is_a_daemon_with_nothing_to_do() {
    assert!(parse("").unwrap().instances.is_empty());
    assert!(parse("instances: []").unwrap().instances.is_empty());
}

#[test]
fn dual_stack_v2_auth_and_tracking() {
    let c = parse(
        r#"
instances:
  - name: ds
    interface: eth0
    vrid: 51
    vips: [192.0.2.100/24, "2001:db8::100/64"]
    unicast_peers: [192.0.2.12, "2001:db8::12"]
    track_interfaces: [{name: eth1, weight: -60}, {name: eth2}]
    announce: {count: 3, interval: 50ms, refresh: 30s}
  - name: old
    interface: eth0
    vrid: 52
    version: 2
    advert_interval: 2s
    auth_pass: secret
    vips: [192.0.2.101]
"#,
    )
    .unwrap();
    let ds = &c.instances[0];
    assert_eq!(ds.vips_v4().count(), 1);
    assert_eq!(ds.vips_v6().count(), 1);
    assert_eq!(ds.unicast_peers.len(), 2);
    assert_eq!(
        ds.track_interfaces,
        vec![
            Track {
                name: "eth1".into(),
                weight: Some(-60)
            },
            Track {
                name: "eth2".into(),
                weight: None
            }
        ]
    );
    assert_eq!(ds.announce.refresh, Duration::from_secs(30));
    let old = &c.instances[1];
    assert_eq!(old.version, Version::V2);
    assert_eq!(old.auth_pass.as_deref(), Some("secret"));
}

#[test]
fn range_errors_name_path_and_value() {
    let errs = errors(
        "instances:\n  - {name: a, interface: eth0, vrid: 0, priority: 256, vips: [192.0.2.1]}\n",
    );
    assert_eq!(
        errs,
        vec![
            "instances[0].vrid: 0 is out of range 1..255",
            "instances[0].priority: 256 is out of range 1..255"
        ]
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let errs = errors(
        r#"
api: {listen: "not-an-address"}
instances:
  - name: Ingress
    interface: eth0
    vrid: 51
    advert_interval: 105ms
    auth_pass: x
    vips: [192.0.2.100/24, "2001:db8::1/64"]
  - name: b
    interface: eth0
    vrid: 52
    version: 2
    advert_interval: 1500ms
    vips: ["2001:db8::1/64", 192.0.2.300]
    unicast_peers: [224.0.0.18]
    track_interfaces: [{name: eth1, weight: 300}]
"#,
    );
    let expect = [
        "api.listen: \"not-an-address\" is not an address:port",
        "instances[0].name: \"Ingress\" must match [a-z0-9-]+, at most 32 characters",
        "instances[0].advert_interval: 105ms is not a multiple of 10ms (VRRPv3 counts centiseconds)",
        "instances[0].auth_pass: set but version is 3 (auth_pass is VRRPv2 only)",
        "instances[1].advert_interval: 1500ms is not whole seconds (VRRPv2 counts seconds)",
        "instances[1].vips[0]: \"2001:db8::1/64\": VRRPv2 is IPv4 only",
        "instances[1].vips[1]: \"192.0.2.300\" is not an IP address",
        "instances[1].track_interfaces[0].weight: 300 is out of range -254..254 (and not 0)",
    ];
    for x in expect {
        assert!(errs.iter().any(|e| e == x), "missing {x:?} in {errs:#?}");
    }
    assert!(
        errs.iter()
            .any(|e| e.starts_with("instances[1].unicast_peers[0]")),
        "{errs:#?}"
    );
}

#[test]
fn cross_instance_collisions() {
    let errs = errors(
        r#"
instances:
  - {name: a, interface: eth0, vrid: 51, vips: [192.0.2.100]}
  - {name: a, interface: eth0, vrid: 51, vips: [192.0.2.100]}
  - {name: c, interface: eth0, vrid: 51, vips: ["2001:db8::5"]}
"#,
    );
    assert!(
        errs.contains(&"instances[1].name: \"a\" is already used by instances[0]".to_string()),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("instances[1].vrid: 51 on eth0 (IPv4) collides")),
        "{errs:#?}"
    );
    assert!(
        errs.contains(&"instances[1].vips: 192.0.2.100 is also a VIP of instances[0]".to_string())
    );
    // Same VRID on the other family is a separate virtual router: allowed.
    assert!(
        !errs.iter().any(|e| e.starts_with("instances[2]")),
        "{errs:#?}"
    );
}

#[test]
fn owner_cannot_have_weights_and_v3_interval_bounds() {
    let errs = errors(
        r#"
instances:
  - {name: a, interface: eth0, vrid: 1, priority: 255, vips: [192.0.2.1], track_interfaces: [{name: eth1, weight: -10}]}
  - {name: b, interface: eth0, vrid: 2, advert_interval: 41s, vips: [192.0.2.2]}
  - {name: c, interface: eth0, vrid: 3, advert_interval: 100, vips: [192.0.2.3]}
"#,
    );
    assert!(
        errs[0].starts_with("instances[0].track_interfaces[0].weight: the address owner"),
        "{errs:#?}"
    );
    assert!(
        errs.contains(
            &"instances[1].advert_interval: 41s is out of range 10ms..40.95s".to_string()
        ),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("instances[2].advert_interval: \"100\" needs a unit")),
        "{errs:#?}"
    );
}

#[test]
fn unknown_fields_and_type_errors_are_reported() {
    let e =
        errors("instances:\n  - {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1], prio: 5}\n");
    assert!(e[0].contains("prio"), "{e:?}");
    let e = errors("instances:\n  - {name: a, interface: eth0, vrid: abc, vips: [192.0.2.1]}\n");
    assert!(e[0].contains("line 2") || e[0].contains("2:"), "{e:?}");
}
