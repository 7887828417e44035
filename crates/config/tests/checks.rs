//! Health checks, notify hooks and the explicit unicast mode.

use std::time::Duration;

use edgevip_config::{HttpTls, Probe, parse};

const BASE: &str = "instances:\n  - {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1/24]";

fn one(extra: &str) -> Result<edgevip_config::Instance, Vec<String>> {
    parse(&format!("{BASE}, {extra}}}\n"))
        .map(|c| c.instances.into_iter().next().unwrap())
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

#[test]
fn checks_parse_with_defaults() {
    let i = one(
        r#"health_checks: [{name: ingress, http: {url: "http://127.0.0.1:10254/healthz"}},
           {tcp: "127.0.0.1:443", weight: -50, interval: 1s, rise: 1, fall: 5},
           {exec: [/bin/check, --fast], timeout: 2s}], notify: [/bin/hook, x]"#,
    )
    .unwrap();
    let c = &i.health_checks;
    assert_eq!(c.len(), 3);
    assert_eq!(
        c[0].probe,
        Probe::Http {
            url: "http://127.0.0.1:10254/healthz".into(),
            expect_status: 200,
            tls: HttpTls::default(),
        }
    );
    assert_eq!(
        (
            c[0].interval,
            c[0].timeout,
            c[0].rise,
            c[0].fall,
            c[0].weight
        ),
        (
            Duration::from_millis(200),
            Duration::from_millis(300),
            3,
            2,
            None
        )
    );
    assert_eq!(c[1].name, "check-1");
    assert_eq!((c[1].weight, c[1].rise, c[1].fall), (Some(-50), 1, 5));
    assert_eq!(
        c[2].probe,
        Probe::Exec {
            argv: vec!["/bin/check".into(), "--fast".into()]
        }
    );
    assert_eq!(i.notify, vec!["/bin/hook".to_string(), "x".into()]);
}

#[test]
fn check_mistakes_name_path_and_value() {
    let e = one(
        r#"health_checks: [{http: {url: "https://x/"}, tcp: "1.2.3.4:1"}, {tcp: "nope"},
           {name: z, exec: [], weight: 0, rise: 0}, {name: z, http: {url: "http://h/", expect_status: 99}}]"#,
    )
    .unwrap_err();
    for want in [
        "instances[0].health_checks[0]: needs exactly one of http, tcp, exec",
        "instances[0].health_checks[1].tcp: \"nope\" is not an address:port",
        "instances[0].health_checks[2].exec: needs a command",
        "instances[0].health_checks[2].weight: 0 is out of range -254..254 (and not 0)",
        "instances[0].health_checks[2].rise: 0 is out of range 1..100",
        "instances[0].health_checks[3].name: \"z\" is used twice",
        "instances[0].health_checks[3].http.expect_status: 99 is out of range 100..599",
    ] {
        assert!(e.iter().any(|x| x == want), "missing {want:?} in {e:#?}");
    }
}

#[test]
fn https_checks_take_system_roots_a_pinned_ca_or_an_explicit_insecure() {
    let i = one(
        r#"health_checks: [{name: sys, http: {url: "https://192.0.2.1:6443/readyz"}},
           {name: pin, http: {url: "https://127.0.0.1:6443/readyz", ca_file: /etc/kubernetes/pki/ca.crt,
                              server_name: kubernetes, expect_status: 200}},
           {name: any, http: {url: "https://127.0.0.1:6443/readyz", insecure_skip_verify: true}}]"#,
    )
    .unwrap();
    let tls: Vec<HttpTls> = i
        .health_checks
        .iter()
        .map(|c| match &c.probe {
            Probe::Http { tls, .. } => tls.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tls[0], HttpTls::default(), "system roots, the URL's host");
    assert_eq!(
        tls[1],
        HttpTls {
            ca_file: Some("/etc/kubernetes/pki/ca.crt".into()),
            server_name: Some("kubernetes".into()),
            insecure_skip_verify: false,
        }
    );
    assert!(tls[2].insecure_skip_verify && tls[2].ca_file.is_none());
}

#[test]
fn https_check_mistakes_name_field_and_value() {
    let e = one(
        r#"health_checks: [{name: a, http: {url: "http://127.0.0.1/", ca_file: /ca.pem, insecure_skip_verify: false}},
           {name: b, http: {url: "https://127.0.0.1/", ca_file: ca.pem, server_name: "bad name"}},
           {name: c, http: {url: "https://127.0.0.1/", ca_file: /ca.pem, insecure_skip_verify: true}},
           {name: d, http: {url: "ftp://127.0.0.1/"}}]"#,
    )
    .unwrap_err();
    for want in [
        "instances[0].health_checks[0].http.ca_file: \"/ca.pem\": only for an https:// URL (url is \"http://127.0.0.1/\")",
        "instances[0].health_checks[0].http.insecure_skip_verify: false: only for an https:// URL (url is \"http://127.0.0.1/\")",
        "instances[0].health_checks[1].http.ca_file: \"ca.pem\" is not an absolute path",
        "instances[0].health_checks[1].http.server_name: \"bad name\" is not a DNS name or an IP address",
        "instances[0].health_checks[2].http.insecure_skip_verify: true contradicts ca_file \"/ca.pem\": pin a CA or skip verification, not both",
        "instances[0].health_checks[3].http.url: \"ftp://127.0.0.1/\" is not an http:// or https:// URL",
    ] {
        assert!(e.iter().any(|x| x == want), "missing {want:?} in {e:#?}");
    }
    assert_eq!(e.len(), 6, "{e:#?}");
}

#[test]
fn unicast_mode_defaults_to_peers_given_and_can_be_forced() {
    assert!(!one("unicast_peers: []").unwrap().unicast);
    assert!(one("unicast_peers: [192.0.2.2]").unwrap().unicast);
    assert!(one("unicast: true").unwrap().unicast);
    let e = one("unicast: false, unicast_peers: [192.0.2.2]").unwrap_err();
    assert_eq!(
        e,
        vec!["instances[0].unicast: false contradicts the unicast_peers given".to_string()]
    );
}

#[test]
fn one_instance_validates_alone() {
    let raw = edgevip_config::raw::Instance {
        name: Some("x".into()),
        interface: Some("eth0".into()),
        vrid: Some(0),
        vips: vec!["192.0.2.9".into()],
        ..Default::default()
    };
    let e = edgevip_config::Instance::from_raw("data[\"192.0.2.9\"]", raw, &Default::default())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "data[\"192.0.2.9\"].vrid: 0 is out of range 1..255"
    );
}

/// Kubernetes mode's typed defaults fill only what an entry leaves out, and the merged
/// entry meets the file's rules at the entry's own paths.
#[test]
fn typed_defaults_fill_gaps_and_are_validated_like_the_file() {
    use edgevip_config::{Defaults, HealthCheck, Instance, raw};
    let defaults = Defaults {
        interface: Some("eth0".into()),
        priority: 190,
        advert_interval: Duration::from_millis(200),
        preempt: false,
        unicast_peers: Some(vec![
            "192.0.2.12".parse().unwrap(),
            "2001:db8::12".parse().unwrap(),
        ]),
        health_checks: vec![HealthCheck::http(
            "ingress",
            "http://127.0.0.1:10254/healthz",
        )],
        unicast_src: Some("192.0.2.11".parse().unwrap()),
    };
    let entry = |extra: &str| -> raw::Instance {
        serde_saphyr::from_str(&format!(
            "{{name: a, vrid: 7, vips: [192.0.2.1/24]{extra}}}"
        ))
        .unwrap()
    };
    let i = Instance::from_raw("x", entry(""), &defaults).unwrap();
    assert_eq!(
        (
            i.interface.as_str(),
            i.priority,
            i.advert_interval,
            i.preempt
        ),
        ("eth0", 190, Duration::from_millis(200), false)
    );
    assert!(i.unicast);
    assert_eq!(
        i.unicast_peers,
        vec!["192.0.2.12".parse::<std::net::IpAddr>().unwrap()],
        "a default peer of a family no VIP uses is left out"
    );
    assert_eq!(i.health_checks, defaults.health_checks);

    let i = Instance::from_raw(
        "x",
        entry(", interface: eth1, priority: 7, preempt: true, health_checks: [], unicast: false"),
        &defaults,
    )
    .unwrap();
    assert_eq!(
        (i.interface.as_str(), i.priority, i.preempt),
        ("eth1", 7, true)
    );
    assert!(i.health_checks.is_empty() && !i.unicast && i.unicast_peers.is_empty());
    let i = Instance::from_raw("x", entry(", unicast_peers: []"), &defaults).unwrap();
    assert!(!i.unicast, "an empty list given is not a missing one");

    let e = Instance::from_raw(
        "edgevip.yaml: instances[0]",
        entry(", version: 2"),
        &defaults,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "edgevip.yaml: instances[0].advert_interval: 200ms is not whole seconds (VRRPv2 counts seconds)"
    );
    let none = Defaults::default();
    let e = Instance::from_raw("x", entry(""), &none).unwrap_err();
    assert_eq!(e.to_string(), "x.interface: is required");
}

#[test]
fn a_link_local_vip_is_refused() {
    let vips = |v: &str| {
        parse(&format!(
            "instances:\n  - {{name: a, interface: eth0, vrid: 1, vips: [{v}]}}\n"
        ))
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    };
    let e = vips("\"fe80::1/64\", \"febf::1/64\", \"2001:db8::1/64\"").unwrap_err();
    let link_local = "is link-local; VRRPv3 uses the link-local address of the interface itself";
    assert_eq!(
        e,
        [
            format!("instances[0].vips[0]: \"fe80::1/64\" {link_local}"),
            format!("instances[0].vips[1]: \"febf::1/64\" {link_local}"),
        ]
    );
    assert!(vips("\"fec0::1/64\"").is_ok(), "fe80::/10 only");
}

#[test]
fn unicast_src_is_an_ipv4_unicast_address() {
    let one = |extra: &str| {
        edgevip_config::parse(&format!(
            "instances:\n  - {{name: a, interface: eth0, vrid: 7, vips: [192.0.2.1/24]{extra}}}\n"
        ))
    };
    let ok = one(", unicast_src: 192.0.2.11").unwrap();
    assert_eq!(
        ok.instances[0].unicast_src,
        Some("192.0.2.11".parse().unwrap())
    );
    assert_eq!(one("").unwrap().instances[0].unicast_src, None);
    for (bad, why) in [
        ("2001:db8::11", "link-local"),
        ("224.0.0.18", "not a unicast IPv4"),
        ("eth0", "not a unicast IPv4"),
    ] {
        let e = one(&format!(", unicast_src: \"{bad}\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("instances[0].unicast_src") && e.contains(why),
            "{bad}: {e}"
        );
    }
}
