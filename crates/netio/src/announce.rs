//! Telling the LAN where a VIP lives now: gratuitous ARP (an RFC 5227 ARP announcement) for
//! IPv4 and an unsolicited neighbour advertisement (RFC 4861 §7.2.6) for IPv6. The VIP sits
//! on the node's own NIC, so the MAC announced is the interface's.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const ETH_P_ARP: u16 = 0x0806;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A broadcast Ethernet frame carrying an ARP request whose sender and target protocol
/// addresses are both the VIP: every host and switch on the segment updates its entry.
pub fn arp_announcement(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // target hardware address stays zero (RFC 5227 §2.3)
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// ICMPv6 neighbour advertisement for `vip`: Override set (replace cached entries),
/// Solicited clear, Router as configured, Target Link-Layer Address option with our MAC.
/// The checksum is left zero: the kernel fills it for ICMPv6 raw sockets.
pub fn unsolicited_na(mac: [u8; 6], vip: Ipv6Addr, router: bool) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 136;
    p[4] = 0x20 | if router { 0x80 } else { 0 };
    p[8..24].copy_from_slice(&vip.octets());
    p[24] = 2; // option: target link-layer address
    p[25] = 1; // length in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

/// Sends announcements on one interface.
pub struct Announcer {
    packet: Socket,
    icmp6: Socket,
    ifindex: u32,
    mac: [u8; 6],
    /// Set the Router flag in NAs (a node that forwards, keepalived #200).
    pub router_flag: bool,
}

impl Announcer {
    pub fn open(ifindex: u32, ifname: &str, mac: [u8; 6]) -> io::Result<Self> {
        let packet = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
        )?;
        packet.set_nonblocking(true)?;
        let icmp6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        icmp6.bind_device(Some(ifname.as_bytes()))?;
        // RFC 4861 §7.1.2: receivers drop NAs whose hop limit is not 255.
        icmp6.set_multicast_hops_v6(255)?;
        icmp6.set_unicast_hops_v6(255)?;
        icmp6.set_multicast_if_v6(ifindex)?;
        icmp6.set_multicast_loop_v6(false)?;
        icmp6.set_nonblocking(true)?;
        Ok(Announcer {
            packet,
            icmp6,
            ifindex,
            mac,
            router_flag: false,
        })
    }

    /// One announcement for `vip`. Non-blocking: a full queue is an error, not a wait.
    pub async fn announce(&self, vip: IpAddr) -> io::Result<()> {
        match vip {
            IpAddr::V4(v4) => self.send_frame(&arp_announcement(self.mac, v4)),
            IpAddr::V6(v6) => {
                let na = unsolicited_na(self.mac, v6, self.router_flag);
                let dst = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
                self.icmp6.send_to(&na, &dst).map(|_| ())
            }
        }
    }

    fn send_frame(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: the buffer and address pointers are valid for the given lengths.
        let r = unsafe {
            libc::sendto(
                self.packet.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0x5e, 0, 1, 0x33];

    #[test]
    fn arp_announcement_bytes() {
        let f = arp_announcement(MAC, Ipv4Addr::new(192, 0, 2, 100));
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0x5e, 0, 1, 0x33, 0x08,
            0x06, // Ethernet
            0, 1, 0x08, 0, 6, 4, 0, 1, // ARP request
            2, 0, 0x5e, 0, 1, 0x33, 192, 0, 2, 100, // sender
            0, 0, 0, 0, 0, 0, 192, 0, 2, 100, // target
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn unsolicited_na_bytes() {
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let p = unsolicited_na(MAC, vip, false);
        assert_eq!(&p[..8], &[136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(&p[8..24], &vip.octets());
        assert_eq!(&p[24..], &[2, 1, 2, 0, 0x5e, 0, 1, 0x33]);
        assert_eq!(unsolicited_na(MAC, vip, true)[4], 0xa0);
    }
}
