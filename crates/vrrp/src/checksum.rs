//! RFC 1071 Internet checksum, and the pseudo-headers VRRPv3 covers (RFC 5798 §5.2.8).

use std::net::IpAddr;

use crate::wire::IPPROTO_VRRP;

/// One's-complement sum, fed in pieces. Pieces of odd length are only allowed last.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checksum(u32);

impl Checksum {
    pub fn feed(mut self, bytes: &[u8]) -> Self {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            self.0 += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            self.0 += u32::from(*last) << 8;
        }
        // Fold often enough that 4 KiB packets cannot overflow.
        self.0 = (self.0 & 0xffff) + (self.0 >> 16);
        self
    }

    pub fn finish(self) -> u16 {
        let mut s = self.0;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

/// The checksum of `msg` alone (VRRPv2, and the non-standard v3 form).
pub fn message_only(msg: &[u8]) -> u16 {
    Checksum::default().feed(msg).finish()
}

/// The checksum of `msg` with the IPv4 or IPv6 pseudo-header of `src` → `dst` in front.
pub fn with_pseudo_header(src: IpAddr, dst: IpAddr, msg: &[u8]) -> u16 {
    let len = msg.len();
    let c = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Checksum::default()
            .feed(&s.octets())
            .feed(&d.octets())
            .feed(&[0, IPPROTO_VRRP])
            .feed(&(len as u16).to_be_bytes()),
        (s, d) => {
            let (s, d) = (v6(s), v6(d));
            Checksum::default()
                .feed(&s)
                .feed(&d)
                .feed(&(len as u32).to_be_bytes())
                .feed(&[0, 0, 0, IPPROTO_VRRP])
        }
    };
    c.feed(msg).finish()
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of these words is ddf2, so the checksum is 220d.
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(message_only(&b), !0xddf2);
    }

    #[test]
    fn a_message_with_its_checksum_sums_to_zero() {
        let mut m = vec![0x31, 0x33, 0x96, 0x01, 0x00, 0x0a, 0, 0, 192, 0, 2, 100];
        let c = message_only(&m);
        m[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(message_only(&m), 0);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(message_only(&[0xab]), message_only(&[0xab, 0]));
    }
}
