//! Whether a received datagram is an advert this virtual router may believe. The Linux
//! adapter only reads the datagram and its IP header; every protocol check is made here,
//! once, so the daemon never re-derives one and every drop has a typed reason.

use std::net::IpAddr;

use super::{Heard, Router};
use crate::packet::{self, ChecksumForm, DecodeError, Version};
use crate::wire;

/// One received datagram as the adapter saw it.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// The VRRP message, IP header removed.
    pub payload: &'a [u8],
}

/// What the link side of the instance allows: who may speak and how.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    /// Unicast mode: adverts come from `peers` only (possibly none yet: a one-node
    /// cluster) and to us, not to the group. Multicast: from anyone on the link, to the group.
    pub unicast: bool,
    pub peers: &'a [IpAddr],
    /// Unicast peers behind a router arrive with a lower TTL if the operator allows it.
    pub unicast_min_ttl: u8,
    /// Every address of this host on the interface: a packet from one is our own.
    pub own: &'a [IpAddr],
    /// The addresses we advertise for this VRID (this family). A sender with another list
    /// is misconfigured (RFC 5798 §7.1: log it); `strict_vips` drops its adverts, as
    /// keepalived's `vrrp_strict` does.
    pub vips: &'a [IpAddr],
    pub strict_vips: bool,
}

/// A believed advert and the checksum form it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub heard: Heard,
    pub checksum: ChecksumForm,
    /// The advert's address list equals ours (as sets). A mismatch is counted, not dropped,
    /// unless `Link::strict_vips`.
    pub vips_match: bool,
}

/// Why a datagram was not believed; `as_str` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// From one of our own addresses (a loop or a reflected packet).
    OwnPacket,
    /// TTL / hop limit below 255 (or below `unicast_min_ttl` in unicast mode): not sent on
    /// this link (RFC 5798 §7.1).
    Ttl,
    /// Unicast mode, and the source is not a listed peer nor on-link.
    NotAPeer,
    /// Sent to the group in unicast mode, or to a unicast address in multicast mode.
    WrongDestination,
    /// IPv6 multicast adverts come from a link-local source (RFC 5798 §5.1.2.1).
    SourceNotLinkLocal,
    Malformed(DecodeError),
    /// A valid advert for another VRID sharing the receive path.
    OtherVrid,
    VersionMismatch,
    /// VRRPv2 authentication data differs from ours.
    Auth,
    /// VRRPv2 requires every router of a VRID to use the same interval (RFC 3768 §7.1).
    IntervalMismatch,
    /// The advert's address list differs from ours and `Link::strict_vips` is set.
    VipMismatch,
}

impl DropReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::OwnPacket => "own_packet",
            DropReason::Ttl => "ttl",
            DropReason::NotAPeer => "not_a_peer",
            DropReason::WrongDestination => "wrong_destination",
            DropReason::SourceNotLinkLocal => "source_not_link_local",
            DropReason::Malformed(e) => e.as_str(),
            DropReason::OtherVrid => "other_vrid",
            DropReason::VersionMismatch => "version_mismatch",
            DropReason::Auth => "auth",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::VipMismatch => "vip_mismatch",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IPv6 adverts come from the sender's link-local address (RFC 5798 §5.1.2.1) while unicast
/// peers may be listed by global address (Kubernetes lists InternalIPs). A link-local
/// source at hop limit 255 was sent on this very link: as trustworthy as multicast.
fn on_link_v6(src: IpAddr, ttl: u8) -> bool {
    matches!(src, IpAddr::V6(a) if a.is_unicast_link_local()) && ttl == wire::TTL
}

/// Equal as sets, without allocating: lists hold at most 255 addresses, usually a few.
fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

impl Router {
    /// Checks one received datagram against this router and the link's rules. Cheap
    /// checks on the IP header come before decoding, so a flood costs little.
    pub fn accept(&self, d: &Datagram<'_>, link: &Link<'_>) -> Result<Accepted, DropReason> {
        if d.src == self.cfg.primary || link.own.contains(&d.src) {
            return Err(DropReason::OwnPacket);
        }
        let min_ttl = if link.unicast {
            link.unicast_min_ttl
        } else {
            wire::TTL
        };
        if d.ttl < min_ttl {
            return Err(DropReason::Ttl);
        }
        let to_group = d.dst == wire::multicast_group(d.dst.is_ipv4());
        if to_group == link.unicast {
            return Err(DropReason::WrongDestination);
        }
        if link.unicast {
            if !link.peers.contains(&d.src) && !on_link_v6(d.src, d.ttl) {
                return Err(DropReason::NotAPeer);
            }
        } else if matches!(d.src, IpAddr::V6(a) if !a.is_unicast_link_local()) {
            return Err(DropReason::SourceNotLinkLocal);
        }
        let decoded = packet::decode(d.payload, d.src, d.dst).map_err(DropReason::Malformed)?;
        let adv = decoded.advert;
        if adv.vrid != self.cfg.vrid {
            return Err(DropReason::OtherVrid);
        }
        if adv.version != self.cfg.version {
            return Err(DropReason::VersionMismatch);
        }
        if adv.version == Version::V2 {
            if adv.auth != self.cfg.auth {
                return Err(DropReason::Auth);
            }
            if adv.interval_cs != self.cfg.advert_interval_cs {
                return Err(DropReason::IntervalMismatch);
            }
        }
        let vips_match = same_set(&adv.addresses, link.vips);
        if !vips_match && link.strict_vips {
            return Err(DropReason::VipMismatch);
        }
        Ok(Accepted {
            vips_match,
            heard: Heard {
                src: d.src,
                version: adv.version,
                priority: adv.priority,
                interval_cs: adv.interval_cs,
            },
            checksum: decoded.checksum,
        })
    }
}

#[cfg(test)]
mod tests;
