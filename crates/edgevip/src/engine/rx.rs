//! Checks on a received VRRP packet before the state machine sees it. Pure, so every drop
//! reason is tested without sockets.

use std::net::IpAddr;

use vrrp::packet::{self, Auth, ChecksumForm, DecodeError, Version};
use vrrp::router::Heard;

/// What the instance expects of an advert for it.
pub struct Expect<'a> {
    pub vrid: u8,
    pub version: Version,
    pub auth: &'a Auth,
    /// Unicast mode: adverts are accepted from `peers` only (possibly none yet: a
    /// one-node cluster). Multicast: from anyone on the link.
    pub unicast: bool,
    pub peers: &'a [IpAddr],
    pub unicast_min_ttl: u8,
    /// All addresses of this host on the interface: a packet from one of them is our own.
    pub own: &'a [IpAddr],
}

/// Result of a packet for another VRID sharing the link: not an error, just not ours.
pub const OTHER_VRID: &str = "other_vrid";

/// IPv6 adverts come from the sender's link-local address (RFC 5798 §5.1.2.1), while unicast
/// peers are listed by their global addresses (Kubernetes gives InternalIPs). A link-local
/// source with hop limit 255 was sent on this very link: as trustworthy as multicast.
fn on_link_v6(src: IpAddr, ttl: u8) -> bool {
    matches!(src, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80) && ttl == 255
}

/// Validates one received packet. `Err` carries the drop reason, a metric label.
pub fn accept(
    e: &Expect<'_>,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    payload: &[u8],
) -> Result<(Heard, ChecksumForm), &'static str> {
    if e.own.contains(&src) {
        return Err("own_packet");
    }
    // RFC 5798 §7.1: TTL / hop limit must be 255. Unicast peers may sit behind a router
    // only if the operator lowers the minimum.
    let min_ttl = if !e.unicast { 255 } else { e.unicast_min_ttl };
    if ttl < min_ttl {
        return Err("ttl");
    }
    if e.unicast && !e.peers.contains(&src) && !on_link_v6(src, ttl) {
        return Err("not_a_peer");
    }
    let decoded = packet::decode(payload, src, dst).map_err(decode_reason)?;
    let adv = decoded.advert;
    if adv.vrid != e.vrid {
        return Err(OTHER_VRID);
    }
    if adv.version != e.version {
        return Err("version_mismatch");
    }
    if adv.version == Version::V2 && adv.auth != *e.auth {
        return Err("auth");
    }
    let heard = Heard {
        src,
        version: adv.version,
        priority: adv.priority,
        interval_cs: adv.interval_cs,
    };
    Ok((heard, decoded.checksum))
}

pub fn decode_reason(e: DecodeError) -> &'static str {
    match e {
        DecodeError::Truncated { .. } => "truncated",
        DecodeError::BadVersion(_) => "bad_version",
        DecodeError::V2OverIpv6 => "v2_over_ipv6",
        DecodeError::BadType(_) => "bad_type",
        DecodeError::VridZero => "vrid_zero",
        DecodeError::IntervalZero => "interval_zero",
        DecodeError::CountMismatch { .. } => "bad_length",
        DecodeError::BadChecksum { .. } => "bad_checksum",
        DecodeError::BadAuthType(_) => "bad_auth_type",
        DecodeError::FamilyMismatch => "family_mismatch",
        DecodeError::BadIpHeader(_) => "bad_ip_header",
        #[allow(unreachable_patterns)]
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrrp::packet::Advert;

    const SRC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 12));
    const DST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(224, 0, 0, 18));
    const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 11));

    fn advert(version: Version, vrid: u8, auth: Auth) -> Vec<u8> {
        let a = Advert {
            version,
            vrid,
            priority: 140,
            interval_cs: 100,
            addresses: vec!["192.0.2.100".parse().unwrap()],
            auth,
        };
        packet::encode(&a, SRC, DST, ChecksumForm::PseudoHeader).unwrap()
    }

    fn expect<'a>(version: Version, auth: &'a Auth, peers: &'a [IpAddr]) -> Expect<'a> {
        Expect {
            vrid: 51,
            version,
            auth,
            unicast: !peers.is_empty(),
            peers,
            unicast_min_ttl: 255,
            own: &[ME],
        }
    }

    #[test]
    fn accepts_a_good_advert() {
        let p = advert(Version::V3, 51, Auth::None);
        let (h, form) = accept(&expect(Version::V3, &Auth::None, &[]), SRC, DST, 255, &p).unwrap();
        assert_eq!((h.priority, h.interval_cs, h.src), (140, 100, SRC));
        assert_eq!(form, ChecksumForm::PseudoHeader);
    }

    #[test]
    fn drops_with_a_reason() {
        let none = Auth::None;
        let e = expect(Version::V3, &none, &[]);
        let p = advert(Version::V3, 51, Auth::None);
        assert_eq!(accept(&e, SRC, DST, 254, &p), Err("ttl"));
        assert_eq!(accept(&e, ME, DST, 255, &p), Err("own_packet"));
        assert_eq!(accept(&e, SRC, DST, 255, &p[..7]), Err("truncated"));
        let mut bad = p.clone();
        bad[2] ^= 1;
        assert_eq!(accept(&e, SRC, DST, 255, &bad), Err("bad_checksum"));
        let other = advert(Version::V3, 52, Auth::None);
        assert_eq!(accept(&e, SRC, DST, 255, &other), Err(OTHER_VRID));
        let v2 = advert(Version::V2, 51, Auth::None);
        assert_eq!(accept(&e, SRC, DST, 255, &v2), Err("version_mismatch"));
    }

    #[test]
    fn v2_auth_must_match() {
        let pass = Auth::Simple(*b"secret\0\0");
        let e = expect(Version::V2, &pass, &[]);
        let good = advert(Version::V2, 51, pass.clone());
        assert!(accept(&e, SRC, DST, 255, &good).is_ok());
        let wrong = advert(Version::V2, 51, Auth::Simple(*b"guess\0\0\0"));
        assert_eq!(accept(&e, SRC, DST, 255, &wrong), Err("auth"));
        let none = advert(Version::V2, 51, Auth::None);
        assert_eq!(accept(&e, SRC, DST, 255, &none), Err("auth"));
    }

    #[test]
    fn unicast_accepts_only_peers_and_honours_min_ttl() {
        let none = Auth::None;
        let peers = [SRC];
        let mut e = expect(Version::V3, &none, &peers);
        let p = advert(Version::V3, 51, Auth::None);
        let stranger: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(accept(&e, stranger, SRC, 255, &p), Err("not_a_peer"));
        e.unicast_min_ttl = 250;
        // Unicast adverts are checksummed with the unicast destination.
        let uni = {
            let a = packet::decode(&p, SRC, DST).unwrap().advert;
            packet::encode(&a, SRC, ME, ChecksumForm::PseudoHeader).unwrap()
        };
        assert!(accept(&e, SRC, ME, 251, &uni).is_ok());
        assert_eq!(accept(&e, SRC, ME, 249, &uni), Err("ttl"));
    }

    #[test]
    fn ipv6_unicast_accepts_link_local_sources_only_at_hop_limit_255() {
        let none = Auth::None;
        let global: IpAddr = "2001:db8::12".parse().unwrap();
        let peers = [global];
        let mut e = expect(Version::V3, &none, &peers);
        e.own = &[];
        e.unicast_min_ttl = 250;
        let ll: IpAddr = "fe80::12".parse().unwrap();
        let me: IpAddr = "2001:db8::11".parse().unwrap();
        let a = Advert {
            version: Version::V3,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addresses: vec!["2001:db8::100".parse().unwrap()],
            auth: Auth::None,
        };
        let p = packet::encode(&a, ll, me, ChecksumForm::PseudoHeader).unwrap();
        assert!(accept(&e, ll, me, 255, &p).is_ok(), "from the link");
        assert_eq!(
            accept(&e, ll, me, 251, &p),
            Err("not_a_peer"),
            "routed: must be a listed peer"
        );
        let stranger: IpAddr = "2001:db8::99".parse().unwrap();
        let q = packet::encode(&a, stranger, me, ChecksumForm::PseudoHeader).unwrap();
        assert_eq!(accept(&e, stranger, me, 255, &q), Err("not_a_peer"));
    }
}
