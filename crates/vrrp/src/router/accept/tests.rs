use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::packet::{Advert, Auth, ChecksumForm, Version};
use crate::router::Config;

const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));
const GROUP: IpAddr = IpAddr::V4(wire::MCAST_V4);
const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
const MY_OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 31));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));

fn router(version: Version, auth: Auth, primary: IpAddr) -> Router {
    Router::new(Config {
        vrid: 51,
        version,
        priority: 100,
        advert_interval_cs: 100,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary,
        handoff: true,
        auth,
    })
}

fn advert(version: Version, vrid: u8, auth: Auth, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let a = Advert {
        version,
        vrid,
        priority: 140,
        interval_cs: 100,
        addresses: vec![if src.is_ipv4() {
            "192.0.2.100".parse().unwrap()
        } else {
            "2001:db8::100".parse().unwrap()
        }],
        auth,
    };
    packet::encode(&a, src, dst, ChecksumForm::PseudoHeader).unwrap()
}

const MULTICAST: Link<'static> = Link {
    unicast: false,
    peers: &[],
    unicast_min_ttl: 255,
    own: &[MY_OTHER],
    vips: &[VIP],
    strict_vips: false,
};

fn dg(src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) -> Datagram<'_> {
    Datagram {
        src,
        dst,
        ttl,
        payload,
    }
}

#[test]
fn accepts_a_good_advert() {
    let r = router(Version::V3, Auth::None, ME);
    let p = advert(Version::V3, 51, Auth::None, SRC, GROUP);
    let a = r.accept(&dg(SRC, GROUP, 255, &p), &MULTICAST).unwrap();
    assert_eq!(
        (a.heard.priority, a.heard.interval_cs, a.heard.src),
        (140, 100, SRC)
    );
    assert_eq!(a.checksum, ChecksumForm::PseudoHeader);
}

#[test]
fn drops_with_a_typed_reason() {
    let r = router(Version::V3, Auth::None, ME);
    let p = advert(Version::V3, 51, Auth::None, SRC, GROUP);
    let e = &MULTICAST;
    assert_eq!(r.accept(&dg(SRC, GROUP, 254, &p), e), Err(DropReason::Ttl));
    assert_eq!(
        r.accept(&dg(ME, GROUP, 255, &p), e),
        Err(DropReason::OwnPacket)
    );
    assert_eq!(
        r.accept(&dg(MY_OTHER, GROUP, 255, &p), e),
        Err(DropReason::OwnPacket),
        "any address of ours on the link"
    );
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &p[..7]), e)
            .unwrap_err()
            .as_str(),
        "truncated"
    );
    let mut bad = p.clone();
    bad[2] ^= 1;
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &bad), e)
            .unwrap_err()
            .as_str(),
        "bad_checksum"
    );
    let other = advert(Version::V3, 52, Auth::None, SRC, GROUP);
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &other), e),
        Err(DropReason::OtherVrid)
    );
    let v2 = advert(Version::V2, 51, Auth::None, SRC, GROUP);
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &v2), e),
        Err(DropReason::VersionMismatch)
    );
}

#[test]
fn multicast_mode_takes_adverts_to_the_group_only() {
    let r = router(Version::V3, Auth::None, ME);
    let p = advert(Version::V3, 51, Auth::None, SRC, ME);
    assert_eq!(
        r.accept(&dg(SRC, ME, 255, &p), &MULTICAST),
        Err(DropReason::WrongDestination)
    );
    let peers = [SRC];
    let unicast = Link {
        unicast: true,
        peers: &peers,
        ..MULTICAST
    };
    let q = advert(Version::V3, 51, Auth::None, SRC, GROUP);
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &q), &unicast),
        Err(DropReason::WrongDestination),
        "unicast mode ignores the group"
    );
    assert!(r.accept(&dg(SRC, ME, 255, &p), &unicast).is_ok());
}

#[test]
fn v2_auth_and_interval_must_match() {
    let pass = Auth::Simple(*b"secret\0\0");
    let r = router(Version::V2, pass.clone(), ME);
    let good = advert(Version::V2, 51, pass.clone(), SRC, GROUP);
    assert!(r.accept(&dg(SRC, GROUP, 255, &good), &MULTICAST).is_ok());
    let wrong = advert(Version::V2, 51, Auth::Simple(*b"guess\0\0\0"), SRC, GROUP);
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &wrong), &MULTICAST),
        Err(DropReason::Auth)
    );
    let none = advert(Version::V2, 51, Auth::None, SRC, GROUP);
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &none), &MULTICAST),
        Err(DropReason::Auth)
    );
    let a = Advert {
        version: Version::V2,
        vrid: 51,
        priority: 200,
        interval_cs: 200,
        addresses: vec!["192.0.2.100".parse().unwrap()],
        auth: pass,
    };
    let slow = packet::encode(&a, SRC, GROUP, ChecksumForm::MessageOnly).unwrap();
    assert_eq!(
        r.accept(&dg(SRC, GROUP, 255, &slow), &MULTICAST),
        Err(DropReason::IntervalMismatch)
    );
}

#[test]
fn unicast_accepts_only_peers_and_honours_min_ttl() {
    let r = router(Version::V3, Auth::None, ME);
    let peers = [SRC];
    let mut link = Link {
        unicast: true,
        peers: &peers,
        ..MULTICAST
    };
    let p = advert(Version::V3, 51, Auth::None, SRC, ME);
    let stranger: IpAddr = "192.0.2.99".parse().unwrap();
    assert_eq!(
        r.accept(&dg(stranger, ME, 255, &p), &link),
        Err(DropReason::NotAPeer)
    );
    link.unicast_min_ttl = 250;
    assert!(r.accept(&dg(SRC, ME, 251, &p), &link).is_ok());
    assert_eq!(r.accept(&dg(SRC, ME, 249, &p), &link), Err(DropReason::Ttl));
}

#[test]
fn ipv6_unicast_accepts_link_local_sources_only_at_hop_limit_255() {
    let me: IpAddr = "fe80::11".parse().unwrap();
    let r = router(Version::V3, Auth::None, me);
    let global: IpAddr = "2001:db8::12".parse().unwrap();
    let peers = [global];
    let link = Link {
        unicast: true,
        peers: &peers,
        unicast_min_ttl: 250,
        ..MULTICAST
    };
    let ll: IpAddr = "fe80::12".parse().unwrap();
    let dst: IpAddr = "2001:db8::11".parse().unwrap();
    let p = advert(Version::V3, 51, Auth::None, ll, dst);
    assert!(
        r.accept(&dg(ll, dst, 255, &p), &link).is_ok(),
        "from the link"
    );
    assert_eq!(
        r.accept(&dg(ll, dst, 251, &p), &link),
        Err(DropReason::NotAPeer),
        "routed: must be a listed peer"
    );
    let stranger: IpAddr = "2001:db8::99".parse().unwrap();
    let q = advert(Version::V3, 51, Auth::None, stranger, dst);
    assert_eq!(
        r.accept(&dg(stranger, dst, 255, &q), &link),
        Err(DropReason::NotAPeer)
    );
}

#[test]
fn ipv6_multicast_adverts_come_from_link_local_sources() {
    let me: IpAddr = "fe80::11".parse().unwrap();
    let r = router(Version::V3, Auth::None, me);
    let group: IpAddr = wire::MCAST_V6.into();
    let ll: IpAddr = "fe80::12".parse().unwrap();
    let p = advert(Version::V3, 51, Auth::None, ll, group);
    assert!(r.accept(&dg(ll, group, 255, &p), &MULTICAST).is_ok());
    let global: IpAddr = "2001:db8::12".parse().unwrap();
    let q = advert(Version::V3, 51, Auth::None, global, group);
    assert_eq!(
        r.accept(&dg(global, group, 255, &q), &MULTICAST),
        Err(DropReason::SourceNotLinkLocal)
    );
}

#[test]
fn a_different_vip_list_is_flagged_and_dropped_only_when_strict() {
    let r = router(Version::V3, Auth::None, ME);
    let p = advert(Version::V3, 51, Auth::None, SRC, GROUP);
    assert!(
        r.accept(&dg(SRC, GROUP, 255, &p), &MULTICAST)
            .unwrap()
            .vips_match
    );
    let extra: IpAddr = "192.0.2.101".parse().unwrap();
    for vips in [&[VIP, extra][..], &[extra][..], &[][..]] {
        let link = Link { vips, ..MULTICAST };
        let a = r.accept(&dg(SRC, GROUP, 255, &p), &link).unwrap();
        assert!(!a.vips_match, "ours {vips:?}, theirs [{VIP}]");
        let strict = Link {
            strict_vips: true,
            ..link
        };
        assert_eq!(
            r.accept(&dg(SRC, GROUP, 255, &p), &strict),
            Err(DropReason::VipMismatch)
        );
    }
    // Order does not matter: the same set is the same list.
    let two = Advert {
        version: Version::V3,
        vrid: 51,
        priority: 140,
        interval_cs: 100,
        addresses: vec![extra, VIP],
        auth: Auth::None,
    };
    let p = packet::encode(&two, SRC, GROUP, ChecksumForm::PseudoHeader).unwrap();
    let strict = Link {
        vips: &[VIP, extra],
        strict_vips: true,
        ..MULTICAST
    };
    assert!(
        r.accept(&dg(SRC, GROUP, 255, &p), &strict)
            .unwrap()
            .vips_match
    );
}
