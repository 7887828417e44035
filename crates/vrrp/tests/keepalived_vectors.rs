//! Adverts captured from Debian's keepalived 2.2.7 (`testdata/capture-keepalived.sh`)
//! decode to what its config said, and re-encode to the same bytes.

use std::net::IpAddr;
use std::path::Path;

use vrrp::packet::{Advert, Auth, ChecksumForm, Version, decode, encode};

struct Captured {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    payload: Vec<u8>,
}

/// Classic pcap, Ethernet link type, as tcpdump writes it.
fn read_pcap(path: &Path) -> Vec<Captured> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..4], &0xa1b2c3d4u32.to_le_bytes(), "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(b[20..24].try_into().unwrap()),
        1,
        "Ethernet link type"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let len = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &b[at + 16..at + 16 + len];
        at += 16 + len;
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let ip = &frame[14..];
        out.push(match ethertype {
            0x0800 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                assert_eq!(ip[9], 112);
                Captured {
                    src: IpAddr::from(<[u8; 4]>::try_from(&ip[12..16]).unwrap()),
                    dst: IpAddr::from(<[u8; 4]>::try_from(&ip[16..20]).unwrap()),
                    ttl: ip[8],
                    payload: ip[ihl..total].to_vec(),
                }
            }
            0x86dd => {
                let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                assert_eq!(ip[6], 112);
                Captured {
                    src: IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap()),
                    dst: IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap()),
                    ttl: ip[7],
                    payload: ip[40..40 + plen].to_vec(),
                }
            }
            t => panic!("unexpected ethertype {t:#x}"),
        });
    }
    out
}

fn check(file: &str, want: Advert, form: ChecksumForm) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/keepalived")
        .join(file);
    let packets = read_pcap(&path);
    assert!(!packets.is_empty(), "{file}: no packets");
    for p in packets {
        assert_eq!(p.ttl, 255, "{file}: keepalived sends TTL 255");
        let d = decode(&p.payload, p.src, p.dst).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(d.advert, want, "{file}");
        assert_eq!(d.checksum, form, "{file}");
        let again = encode(&d.advert, p.src, p.dst, form).unwrap();
        assert_eq!(
            again, p.payload,
            "{file}: our encoding differs from keepalived's"
        );
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn v2_without_auth() {
    let want = Advert {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        addresses: vec![ip("192.0.2.100")],
        auth: Auth::None,
    };
    check("v2-noauth.pcap", want, ChecksumForm::MessageOnly);
}

#[test]
fn v2_with_pass() {
    let want = Advert {
        version: Version::V2,
        vrid: 52,
        priority: 200,
        interval_cs: 200,
        addresses: vec![ip("192.0.2.100"), ip("192.0.2.101")],
        auth: Auth::Simple(*b"s3cret\0\0"),
    };
    check("v2-pass.pcap", want, ChecksumForm::MessageOnly);
}

#[test]
fn v3_ipv4_multicast_and_unicast() {
    let want = |vrid, priority, interval_cs| Advert {
        version: Version::V3,
        vrid,
        priority,
        interval_cs,
        addresses: vec![ip("192.0.2.100")],
        auth: Auth::None,
    };
    // keepalived includes the IPv4 pseudo-header in v3 checksums, as RFC 5798 says.
    check(
        "v3-ipv4.pcap",
        want(53, 150, 10),
        ChecksumForm::PseudoHeader,
    );
    check(
        "v3-ipv4-unicast.pcap",
        want(54, 100, 50),
        ChecksumForm::PseudoHeader,
    );
}

#[test]
fn v3_ipv6() {
    let want = Advert {
        version: Version::V3,
        vrid: 55,
        priority: 150,
        interval_cs: 10,
        addresses: vec![ip("2001:db8::100"), ip("2001:db8::101")],
        auth: Auth::None,
    };
    check("v3-ipv6.pcap", want, ChecksumForm::PseudoHeader);
}
