//! Raw IP sockets for protocol 112, one per interface and family, bound to the interface and
//! shared by every virtual router on it: the kernel hands each raw socket every VRRP packet
//! on the link, so one socket per router would make a backup's work grow with the square of
//! the number of routers. The caller routes datagrams by VRID.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::addr::Family;

use vrrp::wire::{IPPROTO_VRRP, MCAST_V4, MCAST_V6, TTL};

/// Larger than any valid advert (255 IPv6 addresses: 4 KiB + headers). Longer datagrams
/// (reassembled fragments from anyone who can route to us) come back truncated: dropped.
pub const RECV_BUF: usize = 4200;

/// A datagram that could not be handed on. Not a socket failure: the next one may be fine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDatagram {
    #[error("datagram longer than {RECV_BUF} bytes")]
    Oversize,
    #[error("IPv4 header: {0}")]
    BadIpHeader(&'static str),
    #[error("no source address, destination or hop limit in the ancillary data")]
    MissingInfo,
}

impl BadDatagram {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            BadDatagram::Oversize => "oversize",
            BadDatagram::BadIpHeader(_) => "bad_ip_header",
            BadDatagram::MissingInfo => "missing_info",
        }
    }
}

/// What a receive gave: a datagram, a datagram to count and drop, or a socket error.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    #[error(transparent)]
    Bad(#[from] BadDatagram),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One received datagram with what the checks need from its IP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6, from the ancillary data).
    pub ttl: u8,
    /// The VRRP message (IPv4 header removed).
    pub payload: Vec<u8>,
}

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    family: Family,
    ifindex: u32,
}

impl VrrpSocket {
    /// Opens the socket on `ifname`, joined to 224.0.0.18 / ff02::12 on that interface only
    /// (unicast routers share it; adverts to the group are theirs to refuse). TTL / hop
    /// limit 255 on send (RFC 5798 §5.1.1.3), and multicast loop off so we never hear
    /// ourselves.
    pub fn open(family: Family, ifindex: u32, ifname: &str) -> io::Result<Self> {
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let s = Socket::new(
            domain,
            Type::RAW.nonblocking(),
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        s.bind_device(Some(ifname.as_bytes()))?;
        match family {
            Family::V4 => {
                s.set_ttl_v4(u32::from(TTL))?;
                s.set_multicast_ttl_v4(u32::from(TTL))?;
                s.set_multicast_loop_v4(false)?;
                s.join_multicast_v4_n(&MCAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
            }
            Family::V6 => {
                s.set_unicast_hops_v6(u32::from(TTL))?;
                s.set_multicast_hops_v6(u32::from(TTL))?;
                s.set_multicast_loop_v6(false)?;
                s.set_multicast_if_v6(ifindex)?;
                setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
                setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
                s.join_multicast_v6(&MCAST_V6, ifindex)?;
            }
        }
        // SAFETY: `Socket` owns its descriptor for its whole life and the AsyncFd owns the
        // Socket, so the descriptor stays open and the same until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register(s) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(VrrpSocket {
            fd,
            family,
            ifindex,
        })
    }

    /// Sends one VRRP message from `source` to `dst` on our interface (the source is set
    /// per packet, so a VIP in another subnet never becomes it).
    pub async fn send_to(&self, payload: &[u8], source: IpAddr, dst: IpAddr) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| self.send_now(s.get_ref().as_raw_fd(), payload, source, dst)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    fn send_now(&self, fd: i32, payload: &[u8], source: IpAddr, dst: IpAddr) -> io::Result<usize> {
        let iov = [IoSlice::new(payload)];
        let r = match (source, dst) {
            (IpAddr::V4(src), IpAddr::V4(d)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: self.ifindex as i32,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(src).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let addr = SockaddrIn::from(SocketAddrV4::new(d, 0));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&addr),
                )
            }
            (IpAddr::V6(src), IpAddr::V6(d)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let scope = if is_link_scope(d) { self.ifindex } else { 0 };
                let addr = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, scope));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&addr),
                )
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "address family mismatch",
                ));
            }
        };
        r.map_err(io::Error::from)
    }

    /// Waits for the next datagram, read into `buf` (at least `RECV_BUF` long, reused by
    /// the caller so a flood allocates nothing but the small payload it hands on).
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Received, RecvError> {
        loop {
            let mut guard = self.fd.readable().await?;
            // WouldBlock must reach `try_io` as an I/O error: it clears the readiness and
            // we wait again, rather than report a spurious failure.
            match guard.try_io(|s| self.recv_now(s.get_ref().as_raw_fd(), buf)) {
                Ok(Ok(r)) => return r.map_err(RecvError::Bad),
                Ok(Err(e)) => return Err(e.into()),
                Err(_would_block) => continue,
            }
        }
    }

    fn recv_now(&self, fd: i32, buf: &mut [u8]) -> io::Result<Result<Received, BadDatagram>> {
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
        let (n, truncated, from, ttl, dst) = {
            let mut iov = [IoSliceMut::new(buf)];
            let m = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
                .map_err(io::Error::from)?;
            let mut ttl = None;
            let mut dst = None;
            for c in m.cmsgs().map_err(io::Error::from)? {
                match c {
                    ControlMessageOwned::Ipv6HopLimit(h) => ttl = Some(h.clamp(0, 255) as u8),
                    ControlMessageOwned::Ipv6PacketInfo(i) => {
                        dst = Some(IpAddr::V6(Ipv6Addr::from(i.ipi6_addr.s6_addr)))
                    }
                    _ => {}
                }
            }
            let from = m.address.and_then(|a| {
                a.as_sockaddr_in6()
                    .map(|s| IpAddr::V6(s.ip()))
                    .or_else(|| a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
            });
            (
                m.bytes,
                m.flags.contains(MsgFlags::MSG_TRUNC),
                from,
                ttl,
                dst,
            )
        };
        if truncated {
            return Ok(Err(BadDatagram::Oversize));
        }
        let buf = &buf[..n];
        Ok(match self.family {
            Family::V4 => parse_ipv4(buf)
                .map(|h| Received {
                    src: IpAddr::V4(h.src),
                    dst: IpAddr::V4(h.dst),
                    ttl: h.ttl,
                    payload: buf[h.header_len..h.total_len].to_vec(),
                })
                .map_err(BadDatagram::BadIpHeader),
            Family::V6 => match (from, dst, ttl) {
                (Some(src), Some(dst), Some(ttl)) => Ok(Received {
                    src,
                    dst,
                    ttl,
                    payload: buf.to_vec(),
                }),
                // Without the hop limit we cannot prove the sender is on-link.
                _ => Err(BadDatagram::MissingInfo),
            },
        })
    }
}

/// Link-local unicast or link-scope multicast: sending there needs the interface as scope.
fn is_link_scope(a: Ipv6Addr) -> bool {
    a.is_unicast_link_local() || a == MCAST_V6 || a.segments()[0] == 0xff02
}

pub(crate) struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub header_len: usize,
    pub total_len: usize,
}

/// The IPv4 header a raw socket delivers. Its length comes from IHL: options may be present.
pub(crate) fn parse_ipv4(b: &[u8]) -> Result<Ipv4Header, &'static str> {
    if b.len() < 20 {
        return Err("IPv4 header truncated");
    }
    if b[0] >> 4 != 4 {
        return Err("not IPv4");
    }
    let header_len = usize::from(b[0] & 0x0f) * 4;
    // The kernel hands raw sockets the datagram with total length in host order on some
    // paths; the received length is authoritative, bounded by the header's claim.
    let claimed = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let total_len = if claimed >= header_len && claimed <= b.len() {
        claimed
    } else {
        b.len()
    };
    if header_len < 20 || header_len > total_len {
        return Err("bad IPv4 header length");
    }
    Ok(Ipv4Header {
        src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
        dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        ttl: b[8],
        header_len,
        total_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_length_comes_from_ihl() {
        let mut p = vec![0u8; 28];
        p[0] = 0x46; // IHL 6: 4 bytes of options
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[8] = 255;
        p[12..16].copy_from_slice(&[192, 0, 2, 11]);
        p[16..20].copy_from_slice(&[224, 0, 0, 18]);
        let h = parse_ipv4(&p).unwrap();
        assert_eq!((h.header_len, h.total_len, h.ttl), (24, 28, 255));
        assert_eq!(h.src, Ipv4Addr::new(192, 0, 2, 11));
        assert!(parse_ipv4(&p[..19]).is_err());
        p[0] = 0x4f; // 60-byte header in a 28-byte packet
        assert!(parse_ipv4(&p).is_err());
        p[0] = 0x66;
        assert!(parse_ipv4(&p).is_err());
    }
}
