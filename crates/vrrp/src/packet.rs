//! VRRP advertisement codec: VRRPv3 (RFC 5798 §5) over IPv4 and IPv6, VRRPv2 (RFC 3768 §5)
//! over IPv4. Decoding never panics and never allocates more than the packet's own length
//! allows.

use std::net::IpAddr;

use crate::checksum;

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
}

impl DecodeError {
    /// The metric label of this error (a drop reason).
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadVersion(_) => "bad_version",
            DecodeError::V2OverIpv6 => "v2_over_ipv6",
            DecodeError::BadType(_) => "bad_type",
            DecodeError::VridZero => "vrid_zero",
            DecodeError::IntervalZero => "interval_zero",
            DecodeError::CountMismatch { .. } => "bad_length",
            DecodeError::BadChecksum { .. } => "bad_checksum",
            DecodeError::BadAuthType(_) => "bad_auth_type",
            DecodeError::FamilyMismatch => "family_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("VRID 0 is invalid")]
    VridZero,
    #[error("interval {0} cs is out of range for this version")]
    Interval(u16),
    #[error("{0} addresses do not fit the 8-bit count")]
    TooManyAddresses(usize),
    #[error("address {0} is not of the packet's family")]
    FamilyMismatch(IpAddr),
    #[error("VRRPv2 is IPv4 only")]
    V2OverIpv6,
}

const HEADER: usize = 8;
const AUTH_DATA: usize = 8;

fn addr_len(a: IpAddr) -> usize {
    if a.is_ipv4() { 4 } else { 16 }
}

/// Decodes the VRRP message of an IP packet from `src` to `dst`.
///
/// The message must be exactly as long as its address count says (plus the 8 bytes of
/// authentication data for v2, which may be left out when no authentication is used):
/// the checksum covers the whole message, so trailing bytes would be someone else's.
pub fn decode(payload: &[u8], src: IpAddr, dst: IpAddr) -> Result<Decoded, DecodeError> {
    let len = payload.len();
    if len < HEADER {
        return Err(DecodeError::Truncated { len, need: HEADER });
    }
    let version = match payload[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        v => return Err(DecodeError::BadVersion(v)),
    };
    if payload[0] & 0x0f != 1 {
        return Err(DecodeError::BadType(payload[0] & 0x0f));
    }
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(DecodeError::FamilyMismatch);
    }
    if version == Version::V2 && src.is_ipv6() {
        return Err(DecodeError::V2OverIpv6);
    }
    let count = payload[3];
    let alen = addr_len(src);
    let addrs_end = HEADER + usize::from(count) * alen;
    let fits = match version {
        Version::V3 => len == addrs_end,
        Version::V2 => len == addrs_end + AUTH_DATA || (len == addrs_end && payload[4] == 0),
    };
    if !fits {
        let need = if version == Version::V2 {
            addrs_end + AUTH_DATA
        } else {
            addrs_end
        };
        return Err(DecodeError::CountMismatch {
            count,
            need,
            have: len,
        });
    }
    let found = u16::from_be_bytes([payload[6], payload[7]]);
    let checksum = match version {
        Version::V2 if checksum::message_only(payload) == 0 => ChecksumForm::MessageOnly,
        Version::V3 if checksum::with_pseudo_header(src, dst, payload) == 0 => {
            ChecksumForm::PseudoHeader
        }
        Version::V3 if src.is_ipv4() && checksum::message_only(payload) == 0 => {
            ChecksumForm::MessageOnly
        }
        _ => return Err(DecodeError::BadChecksum { found }),
    };
    let vrid = payload[1];
    if vrid == 0 {
        return Err(DecodeError::VridZero);
    }
    let (interval_cs, auth) = match version {
        Version::V3 => (
            u16::from_be_bytes([payload[4], payload[5]]) & 0x0fff,
            Auth::None,
        ),
        Version::V2 => {
            let auth = match payload[4] {
                0 => Auth::None,
                1 => {
                    let mut pw = [0u8; 8];
                    if len == addrs_end + AUTH_DATA {
                        pw.copy_from_slice(&payload[addrs_end..]);
                    }
                    Auth::Simple(pw)
                }
                t => return Err(DecodeError::BadAuthType(t)),
            };
            (u16::from(payload[5]) * 100, auth)
        }
    };
    if interval_cs == 0 {
        return Err(DecodeError::IntervalZero);
    }
    let addresses = payload[HEADER..addrs_end]
        .chunks_exact(alen)
        .map(|c| match <[u8; 16]>::try_from(c) {
            Ok(b16) => IpAddr::from(b16),
            Err(_) => IpAddr::from([c[0], c[1], c[2], c[3]]),
        })
        .collect();
    Ok(Decoded {
        advert: Advert {
            version,
            vrid,
            priority: payload[2],
            interval_cs,
            addresses,
            auth,
        },
        checksum,
    })
}

/// Encodes an advert sent from `src` to `dst`. `form` matters only for VRRPv3 over IPv4
/// (v2 never has a pseudo-header, IPv6 always has one).
pub fn encode(
    a: &Advert,
    src: IpAddr,
    dst: IpAddr,
    form: ChecksumForm,
) -> Result<Vec<u8>, EncodeError> {
    if a.vrid == 0 {
        return Err(EncodeError::VridZero);
    }
    if a.version == Version::V2 && (src.is_ipv6() || dst.is_ipv6()) {
        return Err(EncodeError::V2OverIpv6);
    }
    if let Some(bad) = a
        .addresses
        .iter()
        .chain([&dst])
        .find(|x| x.is_ipv4() != src.is_ipv4())
    {
        return Err(EncodeError::FamilyMismatch(*bad));
    }
    let count = u8::try_from(a.addresses.len())
        .map_err(|_| EncodeError::TooManyAddresses(a.addresses.len()))?;
    let mut p = Vec::with_capacity(HEADER + a.addresses.len() * addr_len(src) + AUTH_DATA);
    let v = match a.version {
        Version::V2 => 2,
        Version::V3 => 3,
    };
    p.extend_from_slice(&[(v << 4) | 1, a.vrid, a.priority, count]);
    match a.version {
        Version::V3 => {
            if a.interval_cs == 0 || a.interval_cs > 0x0fff {
                return Err(EncodeError::Interval(a.interval_cs));
            }
            p.extend_from_slice(&a.interval_cs.to_be_bytes());
        }
        Version::V2 => {
            if !a.interval_cs.is_multiple_of(100) || a.interval_cs == 0 || a.interval_cs > 25500 {
                return Err(EncodeError::Interval(a.interval_cs));
            }
            let auth_type = if matches!(a.auth, Auth::Simple(_)) {
                1
            } else {
                0
            };
            p.extend_from_slice(&[auth_type, (a.interval_cs / 100) as u8]);
        }
    }
    p.extend_from_slice(&[0, 0]);
    for addr in &a.addresses {
        match addr {
            IpAddr::V4(x) => p.extend_from_slice(&x.octets()),
            IpAddr::V6(x) => p.extend_from_slice(&x.octets()),
        }
    }
    if a.version == Version::V2 {
        match &a.auth {
            Auth::Simple(pw) => p.extend_from_slice(pw),
            Auth::None => p.extend_from_slice(&[0; AUTH_DATA]),
        }
    }
    let sum = match (a.version, form) {
        (Version::V3, ChecksumForm::PseudoHeader) => checksum::with_pseudo_header(src, dst, &p),
        (Version::V3, ChecksumForm::MessageOnly) if src.is_ipv6() => {
            checksum::with_pseudo_header(src, dst, &p)
        }
        _ => checksum::message_only(&p),
    };
    p[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(p)
}

#[cfg(test)]
mod tests;
