//! Properties of the codec: every valid advert round-trips, and no input makes decoding panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use vrrp::packet::{Advert, Auth, ChecksumForm, Version, decode, encode};

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
}

fn v6() -> impl Strategy<Value = IpAddr> {
    any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}

/// (advert, src, dst, form) for any valid combination of version and family.
fn valid() -> impl Strategy<Value = (Advert, IpAddr, IpAddr, ChecksumForm)> {
    let form = prop_oneof![
        Just(ChecksumForm::PseudoHeader),
        Just(ChecksumForm::MessageOnly)
    ];
    let v3_4 = (
        1u8..,
        any::<u8>(),
        1u16..=4095,
        prop::collection::vec(v4(), 0..20),
        v4(),
        v4(),
        form.clone(),
    )
        .prop_map(|(vrid, priority, interval_cs, addresses, s, d, f)| {
            (
                Advert {
                    version: Version::V3,
                    vrid,
                    priority,
                    interval_cs,
                    addresses,
                    auth: Auth::None,
                },
                s,
                d,
                f,
            )
        });
    let v3_6 = (
        1u8..,
        any::<u8>(),
        1u16..=4095,
        prop::collection::vec(v6(), 0..20),
        v6(),
        v6(),
    )
        .prop_map(|(vrid, priority, interval_cs, addresses, s, d)| {
            let a = Advert {
                version: Version::V3,
                vrid,
                priority,
                interval_cs,
                addresses,
                auth: Auth::None,
            };
            (a, s, d, ChecksumForm::PseudoHeader)
        });
    let auth = prop_oneof![Just(Auth::None), any::<[u8; 8]>().prop_map(Auth::Simple)];
    let v2 = (
        1u8..,
        any::<u8>(),
        1u16..=255,
        prop::collection::vec(v4(), 0..20),
        v4(),
        v4(),
        auth,
    )
        .prop_map(|(vrid, priority, secs, addresses, s, d, auth)| {
            let a = Advert {
                version: Version::V2,
                vrid,
                priority,
                interval_cs: secs * 100,
                addresses,
                auth,
            };
            (a, s, d, ChecksumForm::MessageOnly)
        });
    prop_oneof![v3_4, v3_6, v2]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity((a, s, d, form) in valid()) {
        let bytes = encode(&a, s, d, form).unwrap();
        let got = decode(&bytes, s, d).unwrap();
        prop_assert_eq!(&got.advert, &a);
        if a.version == Version::V3 && s.is_ipv6() {
            prop_assert_eq!(got.checksum, ChecksumForm::PseudoHeader);
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), s in v4(), d in v4(), s6 in v6(), d6 in v6()) {
        let _ = decode(&bytes, s, d);
        let _ = decode(&bytes, s6, d6);
    }

    #[test]
    fn a_flipped_byte_never_panics((a, s, d, form) in valid(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&a, s, d, form).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A single-bit error is always caught by the checksum.
        prop_assert!(decode(&bytes, s, d).is_err());
    }
}
