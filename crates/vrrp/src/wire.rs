//! Numbers VRRP fixes on the wire (RFC 5798 §5.1), defined here once for the codec, the
//! checksum and the Linux adapters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The IPv4 multicast group adverts go to (224.0.0.18).
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group adverts go to (ff02::12).
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit adverts are sent with and, on a link, must arrive with (§5.1.1.3, §7.1).
pub const TTL: u8 = 255;

/// The multicast group of `addr`'s family.
pub fn multicast_group(v4: bool) -> IpAddr {
    if v4 { MCAST_V4.into() } else { MCAST_V6.into() }
}

/// Byte offset of the VRID in a VRRP message (v2 and v3): lets a receiver shared by many
/// virtual routers route a datagram before decoding it.
pub const VRID_OFFSET: usize = 1;
