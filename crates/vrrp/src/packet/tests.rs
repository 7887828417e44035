use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const SRC4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
const MC4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
const SRC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11));
const MC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12));

fn v3(addresses: Vec<IpAddr>) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority: 150,
        interval_cs: 10,
        addresses,
        auth: Auth::None,
    }
}

fn vip4() -> IpAddr {
    "192.0.2.100".parse().unwrap()
}

#[test]
fn v3_ipv4_known_bytes() {
    let p = encode(&v3(vec![vip4()]), SRC4, MC4, ChecksumForm::PseudoHeader).unwrap();
    assert_eq!(&p[..6], &[0x31, 51, 150, 1, 0x00, 0x0a]);
    assert_eq!(&p[8..], &[192, 0, 2, 100]);
    let d = decode(&p, SRC4, MC4).unwrap();
    assert_eq!(d.checksum, ChecksumForm::PseudoHeader);
    assert_eq!(d.advert, v3(vec![vip4()]));
}

#[test]
fn v3_ipv4_without_pseudo_header_is_accepted_and_reported() {
    let p = encode(&v3(vec![vip4()]), SRC4, MC4, ChecksumForm::MessageOnly).unwrap();
    assert_eq!(checksum::message_only(&p), 0);
    assert_eq!(
        decode(&p, SRC4, MC4).unwrap().checksum,
        ChecksumForm::MessageOnly
    );
}

#[test]
fn v3_ipv6_always_uses_the_pseudo_header() {
    let vip: IpAddr = "2001:db8::100".parse().unwrap();
    let p = encode(&v3(vec![vip]), SRC6, MC6, ChecksumForm::MessageOnly).unwrap();
    assert_eq!(p.len(), 8 + 16);
    let d = decode(&p, SRC6, MC6).unwrap();
    assert_eq!(d.checksum, ChecksumForm::PseudoHeader);
    // The pseudo-header binds the packet to its addresses.
    let other: IpAddr = "fe80::99".parse().unwrap();
    assert!(matches!(
        decode(&p, other, MC6),
        Err(DecodeError::BadChecksum { .. })
    ));
}

#[test]
fn v2_with_simple_auth() {
    let a = Advert {
        version: Version::V2,
        vrid: 7,
        priority: 100,
        interval_cs: 100,
        addresses: vec![vip4(), "192.0.2.101".parse().unwrap()],
        auth: Auth::Simple(*b"secret\0\0"),
    };
    let p = encode(&a, SRC4, MC4, ChecksumForm::PseudoHeader).unwrap();
    assert_eq!(&p[..6], &[0x21, 7, 100, 2, 1, 1]);
    assert_eq!(&p[16..], b"secret\0\0");
    assert_eq!(
        checksum::message_only(&p),
        0,
        "v2 never checksums a pseudo-header"
    );
    let d = decode(&p, SRC4, MC4).unwrap();
    assert_eq!(d.advert, a);
    assert_eq!(d.checksum, ChecksumForm::MessageOnly);
}

#[test]
fn v2_without_auth_data_is_accepted_when_auth_is_none() {
    let a = Advert {
        version: Version::V2,
        vrid: 7,
        priority: 100,
        interval_cs: 100,
        addresses: vec![vip4()],
        auth: Auth::None,
    };
    let mut p = encode(&a, SRC4, MC4, ChecksumForm::MessageOnly).unwrap();
    p.truncate(12);
    p[6..8].copy_from_slice(&[0, 0]);
    let c = checksum::message_only(&p);
    p[6..8].copy_from_slice(&c.to_be_bytes());
    assert_eq!(decode(&p, SRC4, MC4).unwrap().advert, a);
}

fn resum(p: &mut [u8], src: IpAddr, dst: IpAddr) {
    p[6..8].copy_from_slice(&[0, 0]);
    let c = checksum::with_pseudo_header(src, dst, p);
    p[6..8].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn every_error_has_its_variant() {
    let good = encode(&v3(vec![vip4()]), SRC4, MC4, ChecksumForm::PseudoHeader).unwrap();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = good.clone();
        f(&mut p);
        resum(&mut p, SRC4, MC4);
        decode(&p, SRC4, MC4)
    };
    assert_eq!(
        decode(&good[..5], SRC4, MC4),
        Err(DecodeError::Truncated { len: 5, need: 8 })
    );
    assert_eq!(with(&|p| p[0] = 0x41), Err(DecodeError::BadVersion(4)));
    assert_eq!(with(&|p| p[0] = 0x32), Err(DecodeError::BadType(2)));
    assert_eq!(with(&|p| p[1] = 0), Err(DecodeError::VridZero));
    assert_eq!(
        with(&|p| p[4..6].copy_from_slice(&[0xf0, 0])),
        Err(DecodeError::IntervalZero)
    );
    assert_eq!(
        with(&|p| p[3] = 2),
        Err(DecodeError::CountMismatch {
            count: 2,
            need: 16,
            have: 12
        })
    );
    assert_eq!(
        with(&|p| p.push(0)),
        Err(DecodeError::CountMismatch {
            count: 1,
            need: 12,
            have: 13
        })
    );
    let mut bad = good.clone();
    bad[2] ^= 0xff;
    assert!(matches!(
        decode(&bad, SRC4, MC4),
        Err(DecodeError::BadChecksum { .. })
    ));
    assert_eq!(decode(&good, SRC4, MC6), Err(DecodeError::FamilyMismatch));
    let mut v2 = good.clone();
    v2[0] = 0x21;
    assert_eq!(decode(&v2, SRC6, MC6), Err(DecodeError::V2OverIpv6));
    let a = Advert {
        version: Version::V2,
        vrid: 7,
        priority: 100,
        interval_cs: 100,
        addresses: vec![vip4()],
        auth: Auth::None,
    };
    let mut p = encode(&a, SRC4, MC4, ChecksumForm::MessageOnly).unwrap();
    p[4] = 2;
    p[6..8].copy_from_slice(&[0, 0]);
    let c = checksum::message_only(&p);
    p[6..8].copy_from_slice(&c.to_be_bytes());
    assert_eq!(decode(&p, SRC4, MC4), Err(DecodeError::BadAuthType(2)));
}

#[test]
fn reserved_bits_of_the_interval_are_ignored() {
    let mut p = encode(&v3(vec![vip4()]), SRC4, MC4, ChecksumForm::PseudoHeader).unwrap();
    p[4] |= 0xf0;
    resum(&mut p, SRC4, MC4);
    assert_eq!(decode(&p, SRC4, MC4).unwrap().advert.interval_cs, 10);
}

#[test]
fn encode_rejects_what_the_wire_cannot_carry() {
    let mut a = v3(vec![vip4()]);
    a.interval_cs = 4096;
    assert_eq!(
        encode(&a, SRC4, MC4, ChecksumForm::PseudoHeader),
        Err(EncodeError::Interval(4096))
    );
    a.interval_cs = 10;
    a.vrid = 0;
    assert_eq!(
        encode(&a, SRC4, MC4, ChecksumForm::PseudoHeader),
        Err(EncodeError::VridZero)
    );
    let mut v2 = v3(vec![vip4()]);
    v2.version = Version::V2;
    v2.interval_cs = 150;
    assert_eq!(
        encode(&v2, SRC4, MC4, ChecksumForm::PseudoHeader),
        Err(EncodeError::Interval(150))
    );
    assert_eq!(
        encode(&v3(vec![vip4()]), SRC6, MC6, ChecksumForm::PseudoHeader),
        Err(EncodeError::FamilyMismatch(vip4()))
    );
    let many = v3(vec![vip4(); 256]);
    assert_eq!(
        encode(&many, SRC4, MC4, ChecksumForm::PseudoHeader),
        Err(EncodeError::TooManyAddresses(256))
    );
}
