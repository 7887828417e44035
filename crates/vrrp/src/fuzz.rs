//! The decoder's fuzz harness, shared by the cargo-fuzz target (`fuzz/`) and the corpus
//! test that runs in CI without cargo-fuzz.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{ChecksumForm, decode, encode};

/// Input: one selector byte (bit 0: IPv6, bit 1: unicast destination), then the VRRP
/// message. Decoding must never panic; whatever decodes must re-encode and decode the same.
pub fn decode_one(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let (src, dst): (IpAddr, IpAddr) = match (sel & 1 == 1, sel & 2 == 2) {
        (false, false) => (
            Ipv4Addr::new(192, 0, 2, 11).into(),
            Ipv4Addr::new(224, 0, 0, 18).into(),
        ),
        (false, true) => (
            Ipv4Addr::new(192, 0, 2, 11).into(),
            Ipv4Addr::new(192, 0, 2, 12).into(),
        ),
        (true, false) => (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11).into(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12).into(),
        ),
        (true, true) => (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11).into(),
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x12).into(),
        ),
    };
    if let Ok(d) = decode(payload, src, dst) {
        let form = if d.checksum == ChecksumForm::MessageOnly {
            ChecksumForm::MessageOnly
        } else {
            ChecksumForm::PseudoHeader
        };
        let again = encode(&d.advert, src, dst, form).expect("a decoded advert re-encodes");
        let back = decode(&again, src, dst).expect("our own encoding decodes");
        assert_eq!(back.advert, d.advert);
    }
}
