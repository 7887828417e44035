use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fence(trust: &Trust) -> Fence {
    Fence::new(
        trust,
        &NodeLink::named("eth0", &["192.0.2.11/24", "2001:db8::11/64"]),
        &[ip("192.0.2.11"), ip("192.0.2.12")],
        &[Cidr::parse("10.244.1.0/24").unwrap()],
    )
}

#[test]
fn cidrs_parse_and_contain() {
    let c = Cidr::parse("192.0.2.0/24").unwrap();
    assert!(c.contains(ip("192.0.2.255")) && !c.contains(ip("192.0.3.0")));
    assert!(!c.contains(ip("2001:db8::1")), "families never mix");
    assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    assert_eq!(Cidr::parse("192.0.2.7").unwrap().len, 32);
    assert!(Cidr::parse("192.0.2.0/33").is_err() && Cidr::parse("x/8").is_err());
    assert_eq!(Cidr::parse_list(" ").unwrap(), vec![]);
}

#[test]
fn by_default_only_the_on_link_subnets_and_never_what_belongs_to_others() {
    let mut t = Trust {
        excluded: vec![Cidr::parse("10.96.0.0/12").unwrap()],
        ..Default::default()
    };
    let f = fence(&t);
    assert_eq!(f.check(ip("192.0.2.100")), Ok(()));
    assert_eq!(f.check(ip("2001:db8::100")), Ok(()));
    for (bad, why) in [
        ("192.0.2.12", "a node's address"),
        ("192.0.2.11", "a node's address"),
        ("192.0.2.0", "network or broadcast"),
        ("192.0.2.255", "network or broadcast"),
        (
            "198.51.100.1",
            "outside the node's on-link subnets (192.0.2.11/24,2001:db8::11/64)",
        ),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("224.0.0.18", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("10.96.0.1", "Service network 10.96.0.0/12"),
        ("10.244.1.5", "Pod or Service network 10.244.1.0/24"),
    ] {
        let e = f.check(ip(bad)).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    // A Service's VIP is bounded by the pool (the caller), not the on-link default...
    assert_eq!(f.check_service(ip("198.51.100.1")), Ok(()));
    assert!(f.check_service(ip("192.0.2.12")).is_err());
    // ...unless the admin gave ranges: then they bound every VIP.
    t.vip_ranges = Cidr::parse_list("192.0.2.128/25").unwrap();
    let f = fence(&t);
    assert_eq!(f.check(ip("192.0.2.200")), Ok(()));
    let e = f.check_service(ip("198.51.100.1")).unwrap_err();
    assert_eq!(e, "198.51.100.1 is outside --vip-ranges (192.0.2.128/25)");
    assert!(f.check(ip("192.0.2.100")).is_err());
}

fn entry(yaml: &str) -> raw::Instance {
    serde_json::from_value(serde_saphyr::from_str::<serde_json::Value>(yaml).unwrap()).unwrap()
}

#[test]
fn the_configmap_sets_nothing_beyond_vips_unless_the_daemonset_allows_it() {
    let f = fence(&Trust::default());
    let hostile = entry(
        "{name: x, vrid: 60, vips: [192.0.2.100/24], notify: [/bin/sh, -c, id], interface: eth1, track_interfaces: [{name: eth2}], unicast_min_ttl: 1, unicast_peers: [203.0.113.66], health_checks: [{exec: [curl, evil]}, {http: {url: 'http://169.254.169.254/latest'}}, {tcp: '203.0.113.9:22'}, {http: {url: 'http://metadata.internal/'}}]}",
    );
    let refused = refused_fields("instances[0]", &hostile, Rights::default(), &f);
    let fields: Vec<&str> = refused
        .iter()
        .map(|r| r.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "instances[0].notify",
            "instances[0].interface",
            "instances[0].track_interfaces",
            "instances[0].unicast_min_ttl",
            "instances[0].unicast_peers",
            "instances[0].health_checks[0].exec",
            "instances[0].health_checks[1].http.url",
            "instances[0].health_checks[2].tcp",
            "instances[0].health_checks[3].http.url",
        ]
    );
    assert_eq!(
        refused[0],
        "instances[0].notify: [\"/bin/sh\", \"-c\", \"id\"]: runs commands as root on every edge node; refused (the DaemonSet allows it with --allow-configmap-exec)"
    );
    assert!(
        refused[6].contains("169.254.169.254")
            && refused[6].contains("--allow-configmap-remote-checks")
    );
    // Every flag, each widening only its own field.
    let all = Rights {
        exec: true,
        interfaces: true,
        ttl: true,
        peers: true,
        remote_checks: true,
        files: true,
    };
    assert!(refused_fields("i", &hostile, all, &f).is_empty());
    let only_exec = Rights {
        exec: true,
        ..Default::default()
    };
    let left = refused_fields("i", &hostile, only_exec, &f);
    assert!(
        left.iter()
            .all(|r| !r.contains("notify") && !r.contains(".exec")),
        "{left:?}"
    );
    assert_eq!(left.len(), 7);
    // Checks of the node itself are what the ConfigMap may have.
    let local = entry(
        "{vips: [192.0.2.100/24], health_checks: [{http: {url: 'http://127.0.0.1:10254/healthz'}}, {http: {url: 'http://[::1]:80/'}}, {http: {url: 'http://localhost/'}}, {tcp: '192.0.2.11:443'}, {http: {url: 'http://192.0.2.12:80/'}}]}",
    );
    let left = refused_fields("i", &local, Rights::default(), &f);
    assert_eq!(
        left.len(),
        0,
        "another edge node is a node address too: {left:?}"
    );
    let userinfo =
        entry("{vips: [], health_checks: [{http: {url: 'http://127.0.0.1@203.0.113.9/'}}]}");
    assert_eq!(
        refused_fields("i", &userinfo, Rights::default(), &f).len(),
        1
    );
}

/// An https check's `ca_file` is a file on the node, read as root: the DaemonSet's to
/// allow. Its URL is judged like an http one's (loopback and the node: yes; elsewhere: no).
#[test]
fn a_configmap_ca_file_needs_allow_configmap_files() {
    let f = fence(&Trust::default());
    let e = entry(
        "{vips: [192.0.2.100/24], health_checks: [{http: {url: 'https://127.0.0.1:6443/readyz', ca_file: /etc/shadow}}, {http: {url: 'https://203.0.113.9/', insecure_skip_verify: true}}, {http: {url: 'https://[::1]:6443/readyz', server_name: kubernetes}}]}",
    );
    let refused = refused_fields("i", &e, Rights::default(), &f);
    assert_eq!(
        refused,
        [
            "i.health_checks[0].http.ca_file: \"/etc/shadow\": names a file on every edge node, read as root; refused (the DaemonSet allows it with --allow-configmap-files)",
            "i.health_checks[1].http.url: \"https://203.0.113.9/\": a check may only reach loopback or this node's own addresses; refused (the DaemonSet allows it with --allow-configmap-remote-checks)",
        ]
    );
    let files = Rights {
        files: true,
        ..Default::default()
    };
    assert_eq!(refused_fields("i", &e, files, &f).len(), 1);
}
