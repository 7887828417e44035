//! The `bgp:` section and the routes to announce → `frr.conf` text for bgpd and bfdd.
//!
//! What the text says, and why:
//! - `no bgp default ipv4-unicast`: a peer carries exactly the family of its own address
//!   (activated in that address family only), so an IPv4 session never has to invent an
//!   IPv6 next hop.
//! - Every peer gets an inbound route map that denies everything (an edge node originates,
//!   it never needs the fabric's routes; MetalLB's FRR mode receives nothing by default
//!   too) and an outbound one that permits host routes only. Both are explicit, which also
//!   satisfies `bgp ebgp-requires-policy` (on by default since FRR 7.4) without turning it
//!   off. The outbound filter never changes when VIPs come and go, so adding a VIP is one
//!   `network` line and never waits for FRR's route-map update timer.
//! - Each VIP is a `network` statement; one whose route carries communities or a
//!   LOCAL_PREF names a route map that sets them. A route map's name is derived from its
//!   contents (a stable hash), so adding a VIP with other attributes never renames the
//!   existing maps, and frr-reload's diff touches only the new lines.
//! - BFD: one bfdd profile per distinct (interval, multiplier), named by its values, and
//!   `neighbor X bfd profile P` (which also turns BFD on for the peer).
//! - `network` import check stays on: FRR announces a VIP only while the address is on
//!   the node (zebra sees it as a connected route of `lo`), so a route never outlives its
//!   address.
//!
//! Every value written here went through `edgevip-config`'s validation (no spaces or line
//! breaks can reach a line); the renderer adds no validation of its own.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use edgevip_config::{Bfd, Bgp, BgpPeer, BgpRouteAttrs, Community};

/// The inbound route map of every peer: deny all.
pub const ROUTE_MAP_IN: &str = "EDGEVIP-IN";
/// The outbound route map of IPv4 peers: host routes only.
pub const ROUTE_MAP_OUT_V4: &str = "EDGEVIP-OUT-V4";
/// The outbound route map of IPv6 peers: host routes only.
pub const ROUTE_MAP_OUT_V6: &str = "EDGEVIP-OUT-V6";
/// bfdd's defaults, which `show running-config` leaves out.
const FRR_BFD_MULTIPLIER: u8 = 3;
const FRR_BFD_INTERVAL_MS: u128 = 300;
const PREFIX_LIST_V4: &str = "EDGEVIP-HOST-V4";
const PREFIX_LIST_V6: &str = "EDGEVIP-HOST-V6";

/// One host route to announce now, with its path attributes (the instance's own, or the
/// `bgp:` defaults: the caller decides).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub addr: IpAddr,
    pub attrs: BgpRouteAttrs,
}

impl Route {
    /// `203.0.113.10/32`, `2001:db8::10/128`.
    pub fn prefix(&self) -> String {
        let len = if self.addr.is_ipv4() { 32 } else { 128 };
        format!("{}/{len}", self.addr)
    }
}

/// The whole `frr.conf`: edgevip owns FRR's configuration on the node (as MetalLB's FRR
/// mode does), so anything not in this text is removed by the next reload. `routes` may
/// come in any order and repeat; the text does not depend on either.
///
/// Lines equal to FRR's defaults are left out (BFD's multiplier 3 and 300 ms intervals):
/// `show running-config` omits them, so writing them would make every reload see a
/// difference. No `hostname` either: vtysh reports its own, so it would never settle.
pub fn render(bgp: &Bgp, routes: &[Route]) -> String {
    let mut routes: Vec<&Route> = routes.iter().collect();
    routes.sort_by(|a, b| {
        (a.addr.is_ipv6(), a.addr)
            .cmp(&(b.addr.is_ipv6(), b.addr))
            .then_with(|| attrs_key(&a.attrs).cmp(&attrs_key(&b.attrs)))
    });
    routes.dedup_by(|a, b| a.addr == b.addr);

    let mut out = String::new();
    out.push_str("! Rendered by edgevip from its bgp: section; edits are overwritten.\n");
    out.push_str("frr defaults traditional\n!\n");

    // Prefix lists and route maps first: `router bgp` refers to them.
    let _ = writeln!(
        out,
        "ip prefix-list {PREFIX_LIST_V4} seq 10 permit 0.0.0.0/0 ge 32"
    );
    let _ = writeln!(
        out,
        "ipv6 prefix-list {PREFIX_LIST_V6} seq 10 permit ::/0 ge 128"
    );
    out.push_str("!\n");
    let _ = writeln!(out, "route-map {ROUTE_MAP_IN} deny 10\nexit\n!");
    let _ = writeln!(
        out,
        "route-map {ROUTE_MAP_OUT_V4} permit 10\n match ip address prefix-list {PREFIX_LIST_V4}\nexit\n!"
    );
    let _ = writeln!(
        out,
        "route-map {ROUTE_MAP_OUT_V6} permit 10\n match ipv6 address prefix-list {PREFIX_LIST_V6}\nexit\n!"
    );
    let mut maps: BTreeMap<String, BgpRouteAttrs> = BTreeMap::new();
    for r in &routes {
        if let Some(name) = attrs_map_name(&r.attrs) {
            maps.insert(name, canonical(&r.attrs));
        }
    }
    for (name, attrs) in &maps {
        let _ = writeln!(out, "route-map {name} permit 10");
        out.push_str(&set_lines(attrs));
        out.push_str("exit\n!\n");
    }

    let mut profiles: BTreeMap<String, Bfd> = BTreeMap::new();
    for p in &bgp.peers {
        if let Some(b) = p.bfd {
            profiles.insert(bfd_profile_name(&b), b);
        }
    }
    if !profiles.is_empty() {
        out.push_str("bfd\n");
        for (name, b) in &profiles {
            let ms = b.interval.as_millis();
            let _ = writeln!(out, " profile {name}");
            if b.multiplier != FRR_BFD_MULTIPLIER {
                let _ = writeln!(out, "  detect-multiplier {}", b.multiplier);
            }
            if ms != FRR_BFD_INTERVAL_MS {
                let _ = writeln!(out, "  receive-interval {ms}");
                let _ = writeln!(out, "  transmit-interval {ms}");
            }
            out.push_str(" exit\n !\n");
        }
        out.push_str("exit\n!\n");
    }

    let _ = writeln!(out, "router bgp {}", bgp.asn);
    let _ = writeln!(out, " bgp router-id {}", bgp.router_id);
    out.push_str(" no bgp default ipv4-unicast\n");
    for p in &bgp.peers {
        neighbor_lines(&mut out, p);
    }
    for v4 in [true, false] {
        let peers: Vec<&BgpPeer> = bgp
            .peers
            .iter()
            .filter(|p| p.address.is_ipv4() == v4)
            .collect();
        if peers.is_empty() {
            continue;
        }
        out.push_str(" !\n");
        let _ = writeln!(
            out,
            " address-family {} unicast",
            if v4 { "ipv4" } else { "ipv6" }
        );
        for r in routes.iter().filter(|r| r.addr.is_ipv4() == v4) {
            match attrs_map_name(&r.attrs) {
                Some(map) => {
                    let _ = writeln!(out, "  network {} route-map {map}", r.prefix());
                }
                None => {
                    let _ = writeln!(out, "  network {}", r.prefix());
                }
            }
        }
        let out_map = if v4 {
            ROUTE_MAP_OUT_V4
        } else {
            ROUTE_MAP_OUT_V6
        };
        for p in peers {
            let a = p.address;
            let _ = writeln!(out, "  neighbor {a} activate");
            let _ = writeln!(out, "  neighbor {a} route-map {ROUTE_MAP_IN} in");
            let _ = writeln!(out, "  neighbor {a} route-map {out_map} out");
        }
        out.push_str(" exit-address-family\n");
    }
    out.push_str("exit\n!\nend\n");
    out
}

/// When `new` differs from `old` (both rendered by [`render`]) only in `network` lines —
/// a VIP announced or withdrawn, nothing else — the vtysh configuration commands that make
/// that change directly: tens of milliseconds instead of frr-reload's half second, which
/// is what a failing health check waits for. `None` when anything else changed (a peer, a
/// route map): that goes through frr-reload.
pub fn network_delta(asn: u32, old: &str, new: &str) -> Option<Vec<String>> {
    let is_network = |l: &&str| l.starts_with("  network ");
    let rest = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !is_network(l))
            .map(str::to_string)
            .collect()
    };
    if rest(old) != rest(new) {
        return None;
    }
    let nets = |t: &str| -> Vec<String> {
        t.lines()
            .filter(is_network)
            .map(|l| l.trim().to_string())
            .collect()
    };
    let (before, after) = (nets(old), nets(new));
    let mut cmds = Vec::new();
    for v4 in [true, false] {
        let family = |l: &String| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|p| p.contains('.') == v4)
        };
        let removed: Vec<&String> = before
            .iter()
            .filter(|l| family(l) && !after.contains(l))
            .collect();
        let added: Vec<&String> = after
            .iter()
            .filter(|l| family(l) && !before.contains(l))
            .collect();
        if removed.is_empty() && added.is_empty() {
            continue;
        }
        cmds.push(format!("router bgp {asn}"));
        cmds.push(format!(
            "address-family {} unicast",
            if v4 { "ipv4" } else { "ipv6" }
        ));
        for l in removed {
            // `network P [route-map M]` → `no network P`.
            let prefix = l.split_whitespace().nth(1).unwrap_or_default();
            cmds.push(format!("no network {prefix}"));
        }
        for l in added {
            cmds.push(l.clone());
        }
        cmds.push("exit-address-family".into());
        cmds.push("exit".into());
    }
    Some(cmds)
}

fn neighbor_lines(out: &mut String, p: &BgpPeer) {
    let a = p.address;
    let _ = writeln!(out, " neighbor {a} remote-as {}", p.asn);
    if p.port != Bgp::DEFAULT_PORT {
        let _ = writeln!(out, " neighbor {a} port {}", p.port);
    }
    if let Some(pw) = &p.password {
        let _ = writeln!(out, " neighbor {a} password {pw}");
    }
    if let Some(h) = p.ebgp_multihop {
        let _ = writeln!(out, " neighbor {a} ebgp-multihop {h}");
    }
    let _ = writeln!(
        out,
        " neighbor {a} timers {} {}",
        p.keepalive.as_secs(),
        p.hold_time.as_secs()
    );
    if let Some(b) = &p.bfd {
        let _ = writeln!(out, " neighbor {a} bfd");
        let _ = writeln!(out, " neighbor {a} bfd profile {}", bfd_profile_name(b));
    }
}

/// `EDGEVIP-BFD-100MS-X3`: the values are the name, so a peer's profile changes name only
/// when its values change.
pub fn bfd_profile_name(b: &Bfd) -> String {
    format!("EDGEVIP-BFD-{}MS-X{}", b.interval.as_millis(), b.multiplier)
}

/// The `set` lines of a route's attributes, in a fixed order.
fn set_lines(a: &BgpRouteAttrs) -> String {
    let mut s = String::new();
    let standard: Vec<String> = a
        .communities
        .iter()
        .filter(|c| !c.is_large())
        .map(Community::to_string)
        .collect();
    let large: Vec<String> = a
        .communities
        .iter()
        .filter(|c| c.is_large())
        .map(Community::to_string)
        .collect();
    if !standard.is_empty() {
        let _ = writeln!(s, " set community {}", standard.join(" "));
    }
    if !large.is_empty() {
        let _ = writeln!(s, " set large-community {}", large.join(" "));
    }
    if let Some(l) = a.local_preference {
        let _ = writeln!(s, " set local-preference {l}");
    }
    s
}

/// A key independent of the order communities were listed in.
fn attrs_key(a: &BgpRouteAttrs) -> (Vec<Community>, Option<u32>) {
    let c = canonical(a);
    (c.communities, c.local_preference)
}

fn canonical(a: &BgpRouteAttrs) -> BgpRouteAttrs {
    let mut c = a.clone();
    c.communities.sort();
    c
}

/// `None` for a route without attributes; otherwise `EDGEVIP-ATTR-<hash of the set lines>`.
pub fn attrs_map_name(a: &BgpRouteAttrs) -> Option<String> {
    if a.communities.is_empty() && a.local_preference.is_none() {
        return None;
    }
    let text = set_lines(&canonical(a));
    Some(format!("EDGEVIP-ATTR-{:08x}", fnv1a32(text.as_bytes())))
}

/// FNV-1a, 32 bits: stable across Rust releases, unlike `DefaultHasher`.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests;
