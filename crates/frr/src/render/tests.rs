use std::net::IpAddr;

use edgevip_config::{BgpRouteAttrs, Community};

use super::*;

fn bgp(yaml_peers: &str) -> Bgp {
    let cfg = edgevip_config::parse(&format!(
        "bgp: {{asn: 64512, router_id: 192.0.2.11, peers: [{yaml_peers}]}}\n"
    ))
    .unwrap();
    cfg.bgp.unwrap()
}

fn route(a: &str) -> Route {
    Route {
        addr: a.parse::<IpAddr>().unwrap(),
        attrs: BgpRouteAttrs::default(),
    }
}

fn with(a: &str, communities: &[Community], lp: Option<u32>) -> Route {
    Route {
        addr: a.parse::<IpAddr>().unwrap(),
        attrs: BgpRouteAttrs {
            communities: communities.to_vec(),
            local_preference: lp,
        },
    }
}

#[test]
fn a_plain_ebgp_peer_and_one_vip() {
    let text = render(
        &bgp("{address: 192.0.2.1, asn: 64500}"),
        &[route("203.0.113.10")],
    );
    let want = "\
! Rendered by edgevip from its bgp: section; edits are overwritten.
frr defaults traditional
!
ip prefix-list EDGEVIP-HOST-V4 seq 10 permit 0.0.0.0/0 ge 32
ipv6 prefix-list EDGEVIP-HOST-V6 seq 10 permit ::/0 ge 128
!
route-map EDGEVIP-IN deny 10
exit
!
route-map EDGEVIP-OUT-V4 permit 10
 match ip address prefix-list EDGEVIP-HOST-V4
exit
!
route-map EDGEVIP-OUT-V6 permit 10
 match ipv6 address prefix-list EDGEVIP-HOST-V6
exit
!
router bgp 64512
 bgp router-id 192.0.2.11
 no bgp default ipv4-unicast
 neighbor 192.0.2.1 remote-as 64500
 neighbor 192.0.2.1 timers 30 90
 !
 address-family ipv4 unicast
  network 203.0.113.10/32
  neighbor 192.0.2.1 activate
  neighbor 192.0.2.1 route-map EDGEVIP-IN in
  neighbor 192.0.2.1 route-map EDGEVIP-OUT-V4 out
 exit-address-family
exit
!
end
";
    assert_eq!(text, want);
}

#[test]
fn every_peer_option_has_its_line() {
    let text = render(
        &bgp(
            "{address: 192.0.2.1, asn: 64500, port: 1179, password: s3cret, hold_time: 9s, \
             keepalive: 3s, ebgp_multihop: 2, bfd: {interval: 100ms, multiplier: 3}}",
        ),
        &[],
    );
    for line in [
        " neighbor 192.0.2.1 remote-as 64500\n",
        " neighbor 192.0.2.1 port 1179\n",
        " neighbor 192.0.2.1 password s3cret\n",
        " neighbor 192.0.2.1 ebgp-multihop 2\n",
        " neighbor 192.0.2.1 timers 3 9\n",
        " neighbor 192.0.2.1 bfd\n",
        " neighbor 192.0.2.1 bfd profile EDGEVIP-BFD-100MS-X3\n",
        "bfd\n profile EDGEVIP-BFD-100MS-X3\n  receive-interval 100\n  transmit-interval 100\n exit\n !\nexit\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // bfdd's defaults are not written (the running config omits them).
    let defaults = render(&bgp("{address: 192.0.2.1, asn: 64500, bfd: {}}"), &[]);
    assert!(
        defaults.contains(" profile EDGEVIP-BFD-300MS-X3\n exit\n"),
        "{defaults}"
    );
    // No VIP yet: the address family is still there, the session still comes up.
    assert!(text.contains("  neighbor 192.0.2.1 activate\n"));
    assert!(!text.contains("network"));
}

#[test]
fn peers_carry_their_own_family_only() {
    let text = render(
        &bgp("{address: 192.0.2.1, asn: 64500}, {address: \"2001:db8::1\", asn: 64500}"),
        &[route("2001:db8:1::10"), route("203.0.113.10")],
    );
    let v4 = text.find(" address-family ipv4 unicast").unwrap();
    let v6 = text.find(" address-family ipv6 unicast").unwrap();
    assert!(v4 < v6);
    let (v4_block, v6_block) = (&text[v4..v6], &text[v6..]);
    assert!(v4_block.contains("  network 203.0.113.10/32\n"));
    assert!(v4_block.contains("  neighbor 192.0.2.1 activate\n"));
    assert!(!v4_block.contains("2001:db8"));
    assert!(v6_block.contains("  network 2001:db8:1::10/128\n"));
    assert!(v6_block.contains("  neighbor 2001:db8::1 route-map EDGEVIP-OUT-V6 out\n"));
    assert!(!v6_block.contains("192.0.2.1"));
}

#[test]
fn communities_and_local_preference_go_through_a_map_named_by_its_contents() {
    let attrs = [
        Community::NoExport,
        Community::Standard(65000, 100),
        Community::Large(65000, 1, 2),
    ];
    let text = render(
        &bgp("{address: 192.0.2.1, asn: 64512}"),
        &[
            with("203.0.113.10", &attrs, Some(200)),
            route("203.0.113.11"),
        ],
    );
    let name = attrs_map_name(&BgpRouteAttrs {
        communities: attrs.to_vec(),
        local_preference: Some(200),
    })
    .unwrap();
    assert!(name.starts_with("EDGEVIP-ATTR-"));
    let block = format!(
        "route-map {name} permit 10\n set community 65000:100 no-export\n \
         set large-community 65000:1:2\n set local-preference 200\nexit\n"
    );
    assert!(text.contains(&block), "{text}");
    assert!(text.contains(&format!("  network 203.0.113.10/32 route-map {name}\n")));
    assert!(text.contains("  network 203.0.113.11/32\n"));
    // The same attributes in another order: the same map.
    let mut reversed = attrs.to_vec();
    reversed.reverse();
    assert_eq!(
        attrs_map_name(&BgpRouteAttrs {
            communities: reversed,
            local_preference: Some(200)
        }),
        Some(name)
    );
}

#[test]
fn the_text_depends_on_the_set_of_routes_only() {
    let b = bgp("{address: 192.0.2.1, asn: 64500}");
    let a = render(&b, &[route("203.0.113.11"), route("203.0.113.10")]);
    let c = render(
        &b,
        &[
            route("203.0.113.10"),
            route("203.0.113.11"),
            route("203.0.113.10"),
        ],
    );
    assert_eq!(a, c);
    assert!(a.find("203.0.113.10/32").unwrap() < a.find("203.0.113.11/32").unwrap());
}

#[test]
fn adding_a_vip_adds_lines_and_changes_none() {
    let b = bgp("{address: 192.0.2.1, asn: 64500, bfd: {}}");
    let before = render(&b, &[route("203.0.113.10")]);
    let after = render(
        &b,
        &[
            route("203.0.113.10"),
            with("203.0.113.12", &[Community::Standard(1, 2)], None),
        ],
    );
    // Every old line is still there, in order (a pure insertion for frr-reload's diff).
    let mut it = after.lines();
    for l in before.lines() {
        assert!(it.any(|n| n == l), "line {l:?} changed or moved");
    }
}

#[test]
fn bfd_profiles_are_shared_by_equal_settings() {
    let text = render(
        &bgp("{address: 192.0.2.1, asn: 64500, bfd: {interval: 100ms}}, \
             {address: 192.0.2.2, asn: 64500, bfd: {interval: 100ms}}, \
             {address: 192.0.2.3, asn: 64500, bfd: {interval: 50ms, multiplier: 5}}, \
             {address: 192.0.2.4, asn: 64500, bfd: {enabled: false}}"),
        &[],
    );
    assert_eq!(text.matches("\n profile EDGEVIP-BFD-100MS-X3\n").count(), 1);
    assert_eq!(text.matches("\n profile EDGEVIP-BFD-50MS-X5\n").count(), 1);
    assert!(!text.contains("neighbor 192.0.2.4 bfd"));
}

#[test]
fn a_vip_coming_or_going_is_a_network_delta_anything_else_is_not() {
    let b = bgp("{address: 192.0.2.1, asn: 64500}, {address: \"2001:db8::1\", asn: 64500}");
    let one = render(&b, &[route("203.0.113.10")]);
    let two = render(&b, &[route("203.0.113.10"), route("2001:db8:1::10")]);
    assert_eq!(
        network_delta(64512, &one, &two).unwrap(),
        [
            "router bgp 64512",
            "address-family ipv6 unicast",
            "network 2001:db8:1::10/128",
            "exit-address-family",
            "exit"
        ]
    );
    let none = render(&b, &[]);
    assert_eq!(
        network_delta(64512, &one, &none).unwrap(),
        [
            "router bgp 64512",
            "address-family ipv4 unicast",
            "no network 203.0.113.10/32",
            "exit-address-family",
            "exit"
        ]
    );
    assert_eq!(
        network_delta(64512, &one, &one).unwrap(),
        Vec::<String>::new()
    );
    // A route with attributes needs a new route map: not a plain delta.
    let attrs = render(
        &b,
        &[
            route("203.0.113.10"),
            with("203.0.113.11", &[Community::Standard(1, 1)], None),
        ],
    );
    assert_eq!(network_delta(64512, &one, &attrs), None);
    // Nor is a peer change.
    let other = render(
        &bgp("{address: 192.0.2.1, asn: 64501}"),
        &[route("203.0.113.10")],
    );
    assert_eq!(network_delta(64512, &one, &other), None);
}
