//! VRRP advertisement codec: VRRPv3 (RFC 5798 §5) over IPv4 and IPv6, VRRPv2 (RFC 3768 §5)
//! over IPv4. Decoding never panics and never allocates more than the packet's own length
//! allows.

use std::net::IpAddr;

/// Protocol version on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

/// VRRPv2 authentication (RFC 3768 §5.3.6). v3 has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: no authentication; the 8 auth bytes are zero.
    None,
    /// Type 1: simple text password, padded with zeros to 8 bytes.
    Simple([u8; 8]),
}

/// One advertisement, independent of its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds. v3 carries it in 12 bits (1..=4095);
    /// v2 carries whole seconds, so v2 values are multiples of 100 (100..=25500).
    pub interval_cs: u16,
    /// The virtual addresses, all of the family of the IP packet carrying the advert.
    pub addresses: Vec<IpAddr>,
    /// v2 only; `Auth::None` for v3.
    pub auth: Auth,
}

/// Which bytes a received v3-over-IPv4 checksum covered. Some routers leave the IPv4
/// pseudo-header out; we accept both and count which one arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// RFC 5798 §5.2.8: pseudo-header + VRRP message (v3, always for IPv6).
    PseudoHeader,
    /// VRRP message alone (v2 always; some v3 IPv4 implementations).
    MessageOnly,
}

/// A decoded advert and the checksum form it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub advert: Advert,
    pub checksum: ChecksumForm,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet too short: {len} bytes, need at least {need}")]
    Truncated { len: usize, need: usize },
    #[error("unsupported VRRP version {0}")]
    BadVersion(u8),
    #[error("VRRPv2 is IPv4 only, got it over IPv6")]
    V2OverIpv6,
    #[error("unknown VRRP type {0} (only 1, ADVERTISEMENT, exists)")]
    BadType(u8),
    #[error("VRID 0 is invalid")]
    VridZero,
    #[error("advertisement interval 0 is invalid")]
    IntervalZero,
    #[error("address count {count} needs {need} bytes, packet carries {have}")]
    CountMismatch { count: u8, need: usize, have: usize },
    #[error("checksum mismatch: packet says {found:#06x}")]
    BadChecksum { found: u16 },
    #[error("unknown VRRPv2 authentication type {0}")]
    BadAuthType(u8),
    #[error("source and destination address families differ")]
    FamilyMismatch,
    #[error("IPv4 header: {0}")]
    BadIpHeader(&'static str),
}
