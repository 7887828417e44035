//! Which VRRP instance carries each LoadBalancer VIP: one instance per VRID of
//! `--lb-vrids`, so the VIPs spread over the edge nodes (an instance's priorities rotate
//! by its VRID, `nodes::priority`). Pure and stable across restarts: a VIP's VRID follows
//! from its address alone, `first + address mod count`, stepping on to the next VRID of the
//! range while the ConfigMap uses that one (so a ConfigMap edit moves only the VIPs of the
//! VRID it takes). Pools fill with consecutive addresses, which land on consecutive VRIDs
//! and so on masters in turn; past the range's size VIPs share instances in the same
//! round, which keeps every node's share within one instance of even.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use crate::services::to_u128;

/// Instances carrying LoadBalancer VIPs are named `lb-<VRID>`.
pub const PREFIX: &str = "lb-";

pub fn instance_name(vrid: u8) -> String {
    format!("{PREFIX}{vrid}")
}

/// The VRID whose instance carries `vip`, skipping those in `taken`; `None` when the whole
/// range is taken.
pub fn vrid_for(vip: IpAddr, range: &RangeInclusive<u8>, taken: &BTreeSet<u8>) -> Option<u8> {
    let (first, last) = (u128::from(*range.start()), u128::from(*range.end()));
    if first > last {
        return None;
    }
    let count = last - first + 1;
    let start = to_u128(vip) % count;
    (0..count)
        .map(|k| (first + (start + k) % count) as u8)
        .find(|v| !taken.contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn consecutive_addresses_take_consecutive_vrids_and_wrap() {
        let none = BTreeSet::new();
        let r = 51..=60; // ten VRIDs
        let got: Vec<u8> = (0..12)
            .map(|k| vrid_for(ip(&format!("192.0.2.{}", 100 + k)), &r, &none).unwrap())
            .collect();
        // 192.0.2.100 is 3221226084, ≡ 4 (mod 10).
        assert_eq!(got, [55, 56, 57, 58, 59, 60, 51, 52, 53, 54, 55, 56]);
        let v6 = vrid_for(ip("2001:db8::7"), &r, &none).unwrap();
        assert!(r.contains(&v6));
    }

    #[test]
    fn a_vrid_the_configmap_takes_moves_only_its_own_vips() {
        let r = 51..=60;
        let none = BTreeSet::new();
        let taken: BTreeSet<u8> = [54].into();
        for k in 0..40 {
            let vip = ip(&format!("198.51.100.{k}"));
            let (before, after) = (
                vrid_for(vip, &r, &none).unwrap(),
                vrid_for(vip, &r, &taken).unwrap(),
            );
            if before == 54 {
                assert_eq!(after, 55);
            } else {
                assert_eq!(after, before, "{vip}");
            }
        }
        let all: BTreeSet<u8> = r.clone().collect();
        assert_eq!(vrid_for(ip("192.0.2.1"), &r, &all), None);
        assert_eq!(vrid_for(ip("192.0.2.1"), &(7..=7), &none), Some(7));
    }
}
