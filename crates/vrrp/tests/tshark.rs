//! Our encoder's output through Wireshark's VRRP dissector: every packet must show a good
//! checksum and nothing malformed. Skipped (with a message) where tshark is not installed.

use std::net::IpAddr;
use std::process::Command;

use vrrp::checksum::message_only;
use vrrp::packet::{Advert, Auth, ChecksumForm, Version, encode};

/// An IPv4 or IPv6 header (TTL / hop limit 255, protocol 112) in front of `payload`.
fn ip_packet(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + payload.len()) as u16;
            p.extend_from_slice(&[0x45, 0xc0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0, 255, 112, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let c = message_only(&p);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            p.extend_from_slice(&[112, 255]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    p.extend_from_slice(payload);
    p
}

/// A classic pcap file with LINKTYPE_RAW (101): raw IPv4/IPv6 packets.
fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    for v in [
        0xa1b2c3d4u32.to_le_bytes().to_vec(),
        2u16.to_le_bytes().to_vec(),
        4u16.to_le_bytes().to_vec(),
    ] {
        f.extend_from_slice(&v);
    }
    f.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn our_packets() -> Vec<Vec<u8>> {
    let v4 = |addresses: Vec<IpAddr>, version, interval_cs, auth| Advert {
        version,
        vrid: 51,
        priority: 150,
        interval_cs,
        addresses,
        auth,
    };
    let (s4, m4) = (ip("192.0.2.11"), ip("224.0.0.18"));
    let (s6, m6) = (ip("fe80::11"), ip("ff02::12"));
    let cases = [
        (
            v4(vec![ip("192.0.2.100")], Version::V3, 10, Auth::None),
            s4,
            m4,
        ),
        (
            v4(
                vec![ip("192.0.2.100"), ip("192.0.2.101")],
                Version::V3,
                4095,
                Auth::None,
            ),
            s4,
            ip("192.0.2.12"),
        ),
        (
            v4(vec![ip("192.0.2.100")], Version::V2, 100, Auth::None),
            s4,
            m4,
        ),
        (
            v4(
                vec![ip("192.0.2.100")],
                Version::V2,
                300,
                Auth::Simple(*b"secret\0\0"),
            ),
            s4,
            m4,
        ),
        (
            v4(
                vec![
                    ip("2001:db8::100"),
                    ip("2001:db8::101"),
                    ip("2001:db8::102"),
                ],
                Version::V3,
                100,
                Auth::None,
            ),
            s6,
            m6,
        ),
    ];
    cases
        .iter()
        .map(|(a, s, d)| {
            ip_packet(
                *s,
                *d,
                &encode(a, *s, *d, ChecksumForm::PseudoHeader).unwrap(),
            )
        })
        .collect()
}

fn dissect(packets: &[Vec<u8>]) -> Option<String> {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("SKIP tshark checks: tshark is not installed");
        return None;
    }
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vrrp-tshark-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ours.pcap");
    std::fs::write(&file, pcap(packets)).unwrap();
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&file)
        .args(["-V", "-o", "vrrp.v3_checksum_as_in_v2:FALSE"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn tshark_accepts_our_adverts_with_good_checksums() {
    let packets = our_packets();
    let Some(text) = dissect(&packets) else {
        return;
    };
    let good = text.matches("[Checksum Status: Good]").count();
    assert_eq!(
        good,
        packets.len(),
        "every VRRP checksum must be good:\n{text}"
    );
    for bad in ["Malformed", "Checksum Status: Bad", "Expert Info (Error"] {
        assert!(!text.contains(bad), "{bad} in:\n{text}");
    }
    assert!(text.contains("Authentication String: secret"), "{text}");
}

#[test]
fn tshark_flags_a_corrupted_advert() {
    // The check above must be able to fail: one flipped byte is reported as bad.
    let mut packets = our_packets();
    let last = packets[0].len() - 1;
    packets[0][last] ^= 0x01;
    let Some(text) = dissect(&packets) else {
        return;
    };
    assert!(text.contains("Checksum Status: Bad"), "{text}");
}
