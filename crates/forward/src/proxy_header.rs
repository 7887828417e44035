//! The PROXY protocol header (HAProxy's spec, v1 text and v2 binary) that tells the
//! backend who the client really is. Pure.

use std::net::SocketAddr;

use crate::spec::ProxyHeader;

const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The header for a TCP connection from `client` to `local` (the VIP:port it reached).
pub fn encode(kind: ProxyHeader, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    // Mixed families happen only with IPv4-mapped addresses; normalise them.
    let (client, local) = (canonical(client), canonical(local));
    match kind {
        ProxyHeader::None => Vec::new(),
        ProxyHeader::V1 => {
            let line = match (client, local) {
                (SocketAddr::V4(c), SocketAddr::V4(l)) => format!(
                    "PROXY TCP4 {} {} {} {}\r\n",
                    c.ip(),
                    l.ip(),
                    c.port(),
                    l.port()
                ),
                (SocketAddr::V6(c), SocketAddr::V6(l)) => format!(
                    "PROXY TCP6 {} {} {} {}\r\n",
                    c.ip(),
                    l.ip(),
                    c.port(),
                    l.port()
                ),
                _ => "PROXY UNKNOWN\r\n".to_string(),
            };
            line.into_bytes()
        }
        ProxyHeader::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            // Version 2, command PROXY.
            out.push(0x21);
            match (client, local) {
                (SocketAddr::V4(c), SocketAddr::V4(l)) => {
                    out.push(0x11); // AF_INET, STREAM
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&c.ip().octets());
                    out.extend_from_slice(&l.ip().octets());
                    out.extend_from_slice(&c.port().to_be_bytes());
                    out.extend_from_slice(&l.port().to_be_bytes());
                }
                (SocketAddr::V6(c), SocketAddr::V6(l)) => {
                    out.push(0x21); // AF_INET6, STREAM
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&c.ip().octets());
                    out.extend_from_slice(&l.ip().octets());
                    out.extend_from_slice(&c.port().to_be_bytes());
                    out.extend_from_slice(&l.port().to_be_bytes());
                }
                _ => {
                    out.push(0x00); // AF_UNSPEC
                    out.extend_from_slice(&0u16.to_be_bytes());
                }
            }
            out
        }
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        a => a,
    }
}

/// Parses a header at the start of `buf` (for tests and the lab's backends): returns the
/// client address and the header length.
pub fn decode(buf: &[u8]) -> Option<(SocketAddr, usize)> {
    if buf.starts_with(b"PROXY ") {
        let end = buf.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&buf[..end]).ok()?;
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 6 {
            return None;
        }
        let ip: std::net::IpAddr = f[2].parse().ok()?;
        let port: u16 = f[4].parse().ok()?;
        return Some((SocketAddr::new(ip, port), end + 2));
    }
    if buf.len() >= 16 && buf[..12] == V2_SIGNATURE && buf[12] == 0x21 {
        let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
        let body = buf.get(16..16 + len)?;
        let client = match buf[13] >> 4 {
            1 if len >= 12 => SocketAddr::new(
                std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]).into(),
                u16::from_be_bytes([body[8], body[9]]),
            ),
            2 if len >= 36 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[..16]);
                SocketAddr::new(
                    std::net::Ipv6Addr::from(a).into(),
                    u16::from_be_bytes([body[32], body[33]]),
                )
            }
            _ => return None,
        };
        return Some((client, 16 + len));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_matches_the_spec_examples() {
        let h = encode(
            ProxyHeader::V1,
            "192.0.2.7:56324".parse().unwrap(),
            "192.0.2.100:443".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.7 192.0.2.100 56324 443\r\n");
        let h = encode(
            ProxyHeader::V1,
            "[2001:db8::7]:1000".parse().unwrap(),
            "[2001:db8::100]:80".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::7 2001:db8::100 1000 80\r\n");
        assert_eq!(
            encode(
                ProxyHeader::None,
                "1.2.3.4:1".parse().unwrap(),
                "1.2.3.4:2".parse().unwrap()
            ),
            b""
        );
    }

    #[test]
    fn v2_is_binary_and_round_trips() {
        let c: SocketAddr = "192.0.2.7:56324".parse().unwrap();
        let h = encode(ProxyHeader::V2, c, "192.0.2.100:443".parse().unwrap());
        assert_eq!(h.len(), 28);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[192, 0, 2, 7]);
        assert_eq!(&h[24..26], &56324u16.to_be_bytes());
        assert_eq!(decode(&h), Some((c, 28)));
        let c6: SocketAddr = "[2001:db8::7]:1000".parse().unwrap();
        let h6 = encode(ProxyHeader::V2, c6, "[2001:db8::100]:80".parse().unwrap());
        assert_eq!(h6.len(), 52);
        assert_eq!(decode(&h6), Some((c6, 52)));
        let v1 = encode(ProxyHeader::V1, c, "192.0.2.100:443".parse().unwrap());
        assert_eq!(decode(&v1), Some((c, v1.len())));
        // Mapped IPv4 clients on a dual-stack socket are announced as IPv4.
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:56324".parse().unwrap();
        assert_eq!(
            encode(ProxyHeader::V2, mapped, "192.0.2.100:443".parse().unwrap()),
            h
        );
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), None);
    }
}
