//! The file/cluster configuration of an instance, translated into what the core and the
//! I/O need. Every such translation lives here, once.

use std::net::IpAddr;

use edgevip_config::{Instance, Version as CfgVersion, Vip};
use edgevip_netio::Family;
use vrrp::packet::{Auth, Version};
use vrrp::router;

pub fn family_of(addr: IpAddr) -> Family {
    if addr.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

/// The address families of the instance's VIPs: one RFC virtual router each.
pub fn families(i: &Instance) -> Vec<Family> {
    [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| i.vips.iter().any(|v| family_of(v.addr) == *f))
        .collect()
}

/// The instance's VIPs of one family.
pub fn vips(i: &Instance, f: Family) -> Vec<Vip> {
    i.vips
        .iter()
        .filter(|v| family_of(v.addr) == f)
        .copied()
        .collect()
}

/// The unicast peers of one family.
pub fn peers(i: &Instance, f: Family) -> Vec<IpAddr> {
    i.unicast_peers
        .iter()
        .filter(|a| family_of(**a) == f)
        .copied()
        .collect()
}

/// What the instance's sockets and routers are bound to: a change here needs a restart,
/// whatever the core says about the rest.
fn io_identity(i: &Instance) -> (&str, Vec<Family>, bool, Option<IpAddr>) {
    (&i.interface, families(i), i.unicast, i.unicast_src)
}

/// Whether `new` can replace `old` without restarting: the I/O is bound to the same things
/// and the core accepts the change for each running router (`Router::can_reconfigure`).
pub fn in_place<'a>(
    old: &Instance,
    new: &Instance,
    routers: impl IntoIterator<Item = &'a router::Router>,
) -> bool {
    io_identity(old) == io_identity(new)
        && routers
            .into_iter()
            .all(|r| r.can_reconfigure(&router_config(new, r.config().primary)))
}

pub fn version(i: &Instance) -> Version {
    match i.version {
        CfgVersion::V2 => Version::V2,
        CfgVersion::V3 => Version::V3,
    }
}

pub fn interval_cs(i: &Instance) -> u16 {
    (i.advert_interval.as_millis() / 10) as u16
}

/// The VRRPv2 password as the wire carries it (`Auth::None` for v3).
pub fn auth(i: &Instance) -> Auth {
    match (&i.auth_pass, version(i)) {
        (Some(p), Version::V2) => {
            let mut b = [0u8; 8];
            let src = p.as_bytes();
            let n = src.len().min(8);
            b[..n].copy_from_slice(&src[..n]);
            Auth::Simple(b)
        }
        _ => Auth::None,
    }
}

pub fn router_config(i: &Instance, primary: IpAddr) -> router::Config {
    router::Config {
        vrid: i.vrid,
        version: version(i),
        priority: i.priority,
        advert_interval_cs: interval_cs(i),
        preempt: i.preempt,
        preempt_delay: i.preempt_delay,
        primary,
        handoff: i.handoff,
        auth: auth(i),
    }
}

/// How long stopping an instance may take: the core's handoff bound plus a margin for I/O.
pub fn stop_bound(i: &Instance) -> std::time::Duration {
    router::handoff_bound(interval_cs(i)) + std::time::Duration::from_secs(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(yaml: &str) -> Instance {
        edgevip_config::parse(yaml).unwrap().instances.remove(0)
    }

    fn in_place_from(old: &Instance, new: &str) -> bool {
        let routers: Vec<router::Router> = families(old)
            .iter()
            .map(|f| {
                let primary: IpAddr = match f {
                    Family::V4 => "192.0.2.11".parse().unwrap(),
                    Family::V6 => "fe80::11".parse().unwrap(),
                };
                router::Router::new(router_config(old, primary))
            })
            .collect();
        in_place(old, &inst(new), &routers)
    }

    const BASE: &str = "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, vips: [192.0.2.100/24]}\n";

    #[test]
    fn priority_vips_and_preemption_change_in_place() {
        let old = inst(BASE);
        for new in [
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 120, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, vips: [192.0.2.100/24, 192.0.2.101/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, preempt: false, vips: [192.0.2.100/24]}\n",
        ] {
            assert!(in_place_from(&old, new), "{new}");
        }
    }

    #[test]
    fn identity_changes_restart_the_instance() {
        let old = inst(BASE);
        for new in [
            "instances:\n  - {name: a, interface: eth1, vrid: 51, priority: 100, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 52, priority: 100, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, advert_interval: 2s, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 255, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, vips: [192.0.2.100/24, \"2001:db8::1\"]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, unicast_peers: [192.0.2.12], vips: [192.0.2.100/24]}\n",
        ] {
            assert!(!in_place_from(&old, new), "{new}");
        }
    }

    #[test]
    fn stop_bound_is_the_core_handoff_bound_plus_io_margin() {
        let i = inst(BASE);
        assert_eq!(stop_bound(&i), std::time::Duration::from_secs(6));
    }
}
