//! The `bgp:` section and `announce: bgp` instances: defaults, and an error with path and
//! value for every field.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use edgevip_config::{AnnounceMode, Bfd, BgpRouteAttrs, Community, Config, parse};

const GOOD: &str = r#"
bgp:
  asn: 64512
  router_id: 192.0.2.11
  communities: ["65000:100"]
  peers:
    - {address: 192.0.2.1, asn: 64500}
    - {address: "2001:db8::1", asn: 64500, port: 1179, password: s3cret,
       hold_time: 9s, keepalive: 3s, bfd: {interval: 100ms, multiplier: 3}, ebgp_multihop: 2}
instances:
  - name: web
    announce: bgp
    vips: [203.0.113.10, "2001:db8:1::10/128"]
    communities: ["65000:200", "65000:1:2", no-export]
    local_preference: 200
    health_checks: [{tcp: "127.0.0.1:80"}]
  - name: vrrp
    interface: eth0
    vrid: 51
    vips: [192.0.2.100/24]
"#;

fn errors(yaml: &str) -> Vec<String> {
    parse(yaml)
        .map(|_| Vec::new())
        .unwrap_or_else(|e| e.0.iter().map(ToString::to_string).collect())
}

fn with(bgp: &str, instance: &str) -> Vec<String> {
    errors(&format!(
        "bgp: {{asn: 64512, router_id: 192.0.2.11, {bgp}}}\ninstances:\n  - {{name: a, {instance}}}\n"
    ))
}

const PEER: &str = "peers: [{address: 192.0.2.1, asn: 64500}]";

#[test]
fn a_full_section_parses_with_defaults() {
    let cfg: Config = parse(GOOD).unwrap();
    let b = cfg.bgp.unwrap();
    assert_eq!((b.asn, b.router_id), (64512, Ipv4Addr::new(192, 0, 2, 11)));
    assert_eq!(
        b.defaults.communities,
        vec![Community::Standard(65000, 100)]
    );
    let p0 = &b.peers[0];
    assert_eq!(p0.address, "192.0.2.1".parse::<IpAddr>().unwrap());
    assert_eq!(
        (p0.asn, p0.port, p0.password.as_deref()),
        (64500, 179, None)
    );
    assert_eq!(
        (p0.hold_time, p0.keepalive, p0.bfd, p0.ebgp_multihop),
        (Duration::from_secs(90), Duration::from_secs(30), None, None)
    );
    let p1 = &b.peers[1];
    assert_eq!((p1.port, p1.password.as_deref()), (1179, Some("s3cret")));
    assert_eq!(
        (p1.hold_time, p1.keepalive),
        (Duration::from_secs(9), Duration::from_secs(3))
    );
    assert_eq!(
        p1.bfd,
        Some(Bfd {
            interval: Duration::from_millis(100),
            multiplier: 3
        })
    );
    assert_eq!(p1.bfd.unwrap().detection_time(), Duration::from_millis(300));
    assert_eq!(p1.ebgp_multihop, Some(2));

    let web = &cfg.instances[0];
    assert_eq!(
        web.mode,
        AnnounceMode::Bgp(BgpRouteAttrs {
            communities: vec![
                Community::Standard(65000, 200),
                Community::Large(65000, 1, 2),
                Community::NoExport
            ],
            local_preference: Some(200),
        })
    );
    assert_eq!(web.interface, "lo");
    assert_eq!(
        web.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["203.0.113.10/32", "2001:db8:1::10/128"]
    );
    assert_eq!(web.health_checks.len(), 1);
    assert_eq!(cfg.instances[1].mode, AnnounceMode::Arp);
}

#[test]
fn accepted_bgp_configs_survive_the_fuzz_round_trip() {
    edgevip_config::fuzz::config_yaml_one(GOOD.as_bytes());
}

#[test]
fn announce_is_a_word_or_the_burst_map() {
    let arp = errors(
        "instances:\n  - {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1/24], announce: arp}\n",
    );
    assert!(arp.is_empty(), "{arp:?}");
    let burst = parse(
        "instances:\n  - {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1/24], announce: {count: 2}}\n",
    )
    .unwrap();
    assert_eq!(burst.instances[0].announce.count, 2);
    assert_eq!(burst.instances[0].mode, AnnounceMode::Arp);
    assert_eq!(
        errors(
            "instances:\n  - {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1/24], announce: ospf}\n"
        ),
        ["instances[0].announce: \"ospf\" is not arp, bgp or a map {count, interval, refresh}"]
    );
    // The map keeps its own field errors.
    let e = errors(
        "instances:\n  - {name: a, interface: eth0, vrid: 1, vips: [192.0.2.1/24], announce: {count: 0}}\n",
    );
    assert_eq!(e, ["instances[0].announce.count: 0 is out of range 1..100"]);
}

#[test]
fn every_bgp_field_is_checked_with_path_and_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "peers: []",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers: needs at least one peer",
        ),
        (
            "peers: [{address: 192.0.2.300, asn: 64500}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].address: \"192.0.2.300\" is not a unicast IP address",
        ),
        (
            "peers: [{address: 192.0.2.1}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].asn: is required",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 23456}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].asn: 23456 is AS_TRANS (RFC 6793), not an AS number",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 4294967296}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].asn: 4294967296 is out of range 1..4294967295",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, port: 0}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].port: 0 is out of range 1..65535",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, password: \"a b\"}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].password: (3 bytes) must be 1..80 printable ASCII characters without spaces",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, hold_time: 2s}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].hold_time: 2s is neither 0s (no keepalives) nor in 3s..65535s (RFC 4271)",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, hold_time: 1500ms}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].hold_time: 1500ms is not whole seconds (BGP counts seconds)",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, hold_time: 9s, keepalive: 9s}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].keepalive: 9s must be at least 1s and below hold_time 9s",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, bfd: {interval: 5ms}}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].bfd.interval: 5ms is out of range 10ms..60s",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, bfd: {multiplier: 1}}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].bfd.multiplier: 1 is out of range 2..255",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1, bfd: {enabled: false, multiplier: 5}}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].bfd.enabled: false, yet interval or multiplier is set",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 64512, ebgp_multihop: 2}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[0].ebgp_multihop: 2: the peer's asn 64512 is ours (iBGP), multihop is for eBGP",
        ),
        (
            "peers: [{address: 192.0.2.1, asn: 1}, {address: 192.0.2.1, asn: 2}]",
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.peers[1].address: 192.0.2.1 is also bgp.peers[0]",
        ),
        (
            &format!("{PEER}, communities: [\"65536:1\"]"),
            "announce: bgp, vips: [203.0.113.10]",
            "bgp.communities[0]: \"65536:1\" is not a community (ASN:VALUE in 0..65535, GLOBAL:DATA1:DATA2 in 0..4294967295, no-export, no-advertise)",
        ),
        (
            PEER,
            "announce: bgp, vips: [203.0.113.10], communities: [\"1:1\", \"1:1\"]",
            "instances[0].communities[1]: \"1:1\" is listed twice",
        ),
        (
            PEER,
            "announce: bgp, vips: [203.0.113.10], local_preference: -1",
            "instances[0].local_preference: -1 is out of range 0..4294967295",
        ),
        (
            PEER,
            "announce: bgp, vips: [203.0.113.0/24]",
            "instances[0].vips[0]: \"203.0.113.0/24\": announce: bgp announces host routes; write 203.0.113.0 or 203.0.113.0/32",
        ),
        (
            PEER,
            "announce: bgp, vips: [\"2001:db8::10\"]",
            "instances[0].vips: 2001:db8::10: no IPv6 peer in bgp.peers to announce it to",
        ),
        (
            PEER,
            "announce: bgp, vips: [203.0.113.10], vrid: 5",
            "instances[0].vrid: is a VRRP setting; announce: bgp runs no VRRP",
        ),
        (
            PEER,
            "announce: bgp, vips: [203.0.113.10], health_checks: [{tcp: \"127.0.0.1:80\", weight: -10}]",
            "instances[0].health_checks[0].weight: -10: announce: bgp has no priority; a failing check withdraws",
        ),
        (
            PEER,
            "interface: eth0, vrid: 1, vips: [192.0.2.1/24], local_preference: 5",
            "instances[0].local_preference: 5: only with announce: bgp",
        ),
    ];
    for (bgp, inst, want) in cases {
        let got = with(bgp, inst);
        assert_eq!(got, [*want], "bgp: {bgp} / instance: {inst}");
    }
    assert_eq!(
        errors("bgp: {router_id: 0.0.0.0, peers: [{address: 192.0.2.1, asn: 1}]}\n"),
        [
            "bgp.asn: is required",
            "bgp.router_id: \"0.0.0.0\" is not a unicast IPv4 address"
        ]
    );
    assert_eq!(
        errors("instances:\n  - {name: a, announce: bgp, vips: [203.0.113.10]}\n"),
        ["instances[0].announce: bgp, but the file has no bgp: section"]
    );
}

#[test]
fn the_password_is_never_echoed() {
    let e = with(
        "peers: [{address: 192.0.2.1, asn: 1, password: \"top secret\"}]",
        "announce: bgp, vips: [203.0.113.10]",
    );
    assert!(e.iter().all(|m| !m.contains("secret")), "{e:?}");
}

#[test]
fn bgp_instances_take_no_vrid_and_do_not_collide_with_vrrp_ones() {
    let cfg = parse(&format!(
        "bgp: {{asn: 64512, router_id: 192.0.2.11, {PEER}}}\ninstances:\n  \
         - {{name: a, announce: bgp, vips: [203.0.113.10]}}\n  \
         - {{name: b, announce: bgp, vips: [203.0.113.11]}}\n"
    ))
    .unwrap();
    assert!(cfg.instances.iter().all(|i| i.mode.is_bgp()));
    // A VIP still belongs to one instance, whatever the mode.
    let e = errors(&format!(
        "bgp: {{asn: 64512, router_id: 192.0.2.11, {PEER}}}\ninstances:\n  \
         - {{name: a, announce: bgp, vips: [203.0.113.10]}}\n  \
         - {{name: b, interface: eth0, vrid: 1, vips: [203.0.113.10/24]}}\n"
    ));
    assert_eq!(
        e,
        ["instances[1].vips: 203.0.113.10 is also a VIP of instances[0]"]
    );
}

#[test]
fn frr_paths_and_drain_time() {
    let b = parse(&format!("bgp: {{asn: 1, router_id: 192.0.2.1, {PEER}}}\n"))
        .unwrap()
        .bgp
        .unwrap();
    assert_eq!(b.frr_config, std::path::Path::new("/etc/frr/frr.conf"));
    assert_eq!(
        (b.frr_vty_socket, b.drain_time),
        (None, Duration::from_secs(1))
    );
    assert_eq!(
        errors(&format!(
            "bgp: {{asn: 1, router_id: 192.0.2.1, {PEER}, frr_config: frr.conf, \
             frr_vty_socket: /run/x, drain_time: 10m}}\n"
        )),
        [
            "bgp.frr_config: \"frr.conf\" is not an absolute path",
            "bgp.drain_time: 10m is longer than 5m"
        ]
    );
    // Instance attributes win field by field over the section's.
    let defaults = BgpRouteAttrs {
        communities: vec![Community::Standard(1, 1)],
        local_preference: Some(50),
    };
    let own = BgpRouteAttrs {
        communities: vec![],
        local_preference: Some(200),
    };
    assert_eq!(
        own.or(&defaults),
        BgpRouteAttrs {
            communities: vec![Community::Standard(1, 1)],
            local_preference: Some(200)
        }
    );
}
