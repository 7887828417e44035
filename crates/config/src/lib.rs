//! edgevip's configuration file. The schema is a contract that operators and external checks
//! drive; fields are only ever added:
//!
//! ```yaml
//! api:
//!   listen: 127.0.0.1:9180        # /healthz, /status, /metrics; optional
//! instances:
//!   - name: ingress               # unique, [a-z0-9-]
//!     interface: eth0
//!     vrid: 51                    # 1..255
//!     priority: 150               # 1..255, 255 = address owner
//!     version: 3                  # 3 (default) or 2
//!     advert_interval: 100ms      # default 1s; v3 10ms..40.95s in 10ms steps, v2 whole seconds
//!     preempt: true               # default true
//!     preempt_delay: 0s
//!     vips: [192.0.2.100/24]      # IPv4 and/or IPv6; mixed families run two routers, same VRID
//!     unicast_peers: []           # empty: multicast
//!     unicast: false              # extension: unicast even with no peer yet
//!     auth_pass: ""               # v2 only
//!     track_interfaces: []        # e.g. [{name: eth1, weight: -60}]; no weight: fault
//!     # extensions, all optional:
//!     announce: {count: 5, interval: 200ms, refresh: 0s}  # GARP/NA burst, periodic refresh
//!     v3_checksum_pseudo_header: true   # false for routers that leave it out (IPv4 only)
//!     unicast_min_ttl: 255        # unicast peers behind a router may arrive with less
//!     unicast_src: 192.0.2.11     # IPv4 advert source (default: the interface's first)
//!     handoff: true               # make-before-break on graceful stop
//!     strict_vip_list: false      # drop adverts listing other VIPs (always counted)
//!     health_checks:              # of the local ingress; failing: weight, or fault without
//!       - {name: ingress, http: {url: "http://127.0.0.1:10254/healthz", expect_status: 200},
//!          interval: 200ms, timeout: 300ms, rise: 3, fall: 2, weight: -50}
//!       # https: the system roots by default; ca_file pins a CA, server_name is the name
//!       # the certificate must carry when the URL's host is not it; insecure_skip_verify:
//!       # true accepts any certificate (never together with ca_file)
//!       - {name: apiserver, http: {url: "https://127.0.0.1:6443/readyz",
//!          ca_file: /etc/kubernetes/pki/ca.crt, server_name: kubernetes}}
//!     notify: [/usr/local/bin/on-state]  # run on state change, EDGEVIP_* in its environment
//! log: {format: text, level: info}
//! ```
//!
//! Every problem is reported, each with its path and value, e.g.
//! `instances[0].vrid: 0 is out of range 1..255`.
#![forbid(unsafe_code)]

mod duration;
#[doc(hidden)]
pub mod fuzz;
pub mod import;
pub mod raw;
mod validate;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use duration::{format_duration, parse_duration};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub api: Option<Api>,
    pub log: Log,
    /// The node's BGP speaker (FRR), for instances with `announce: bgp`.
    pub bgp: Option<Bgp>,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Api {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Version {
    V2,
    V3,
}

/// One virtual router configuration (two RFC routers when its VIPs are dual-stack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub version: Version,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub vips: Vec<Vip>,
    pub unicast_peers: Vec<IpAddr>,
    /// Unicast mode even while `unicast_peers` is empty (a one-node cluster whose peers
    /// come and go, as in Kubernetes mode). Defaults to "peers given".
    pub unicast: bool,
    /// VRRPv2 simple password, at most 8 bytes; `None` = no authentication.
    pub auth_pass: Option<String>,
    pub track_interfaces: Vec<Track>,
    pub announce: Announce,
    /// How the VIPs reach the network: VRRP with GARP / NA (the default), or host routes
    /// over BGP (no VRRP at all; the fields above that only VRRP uses keep their defaults).
    pub mode: AnnounceMode,
    pub v3_checksum_pseudo_header: bool,
    pub unicast_min_ttl: u8,
    /// Source address of IPv4 adverts (keepalived's `unicast_src_ip`); `None`: the
    /// interface's primary address. IPv6 adverts always come from the link-local address.
    pub unicast_src: Option<IpAddr>,
    pub handoff: bool,
    /// Drop adverts whose VIP list differs from ours (keepalived's `vrrp_strict` check);
    /// default false: such adverts are counted and logged, and still believed.
    pub strict_vip_list: bool,
    /// Kubernetes mode: why this node must not hold the VIPs now (e.g. the target Service
    /// has no ready endpoint here); the controller sets it, the file cannot. `Some` is a
    /// fault, like a failing health check without weight.
    pub ineligible: Option<String>,
    /// Checks of a local service (the ingress controller): a failing one lowers the
    /// priority by its weight, or faults the instance when it has none.
    pub health_checks: Vec<HealthCheck>,
    /// Command run (no shell) on every state change, with `EDGEVIP_INSTANCE`,
    /// `EDGEVIP_FAMILY`, `EDGEVIP_STATE`, `EDGEVIP_PREVIOUS_STATE` in its environment.
    pub notify: Vec<String>,
}

impl Instance {
    pub fn vips_v4(&self) -> impl Iterator<Item = &Vip> {
        self.vips.iter().filter(|v| v.addr.is_ipv4())
    }

    pub fn vips_v6(&self) -> impl Iterator<Item = &Vip> {
        self.vips.iter().filter(|v| v.addr.is_ipv6())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl std::fmt::Display for Vip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Track {
    pub name: String,
    /// Added to the priority while the interface is down; `None`: fault instead.
    pub weight: Option<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HealthCheck {
    pub name: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that turn a failed check healthy again.
    pub rise: u32,
    /// Consecutive failures that turn a healthy check failed.
    pub fall: u32,
    /// Added to the priority while failed; `None`: fault instead.
    pub weight: Option<i16>,
}

impl HealthCheck {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);
    pub const DEFAULT_RISE: u32 = 3;
    pub const DEFAULT_FALL: u32 = 2;

    /// What an `http` check's URL must be: `http://` or `https://` and a host part.
    pub fn is_http_url(url: &str) -> bool {
        url.strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .is_some_and(|rest| !rest.is_empty())
    }

    /// An `https://` URL (with a host part): the check speaks TLS.
    pub fn is_https_url(url: &str) -> bool {
        url.strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty())
    }

    /// `GET url` expecting 200, with the default timing; failing = fault. What a YAML
    /// entry `{name, http: {url}}` gives.
    pub fn http(name: &str, url: &str) -> HealthCheck {
        HealthCheck {
            name: name.into(),
            probe: Probe::Http {
                url: url.into(),
                expect_status: 200,
                tls: HttpTls::default(),
            },
            interval: Self::DEFAULT_INTERVAL,
            timeout: Self::DEFAULT_TIMEOUT,
            rise: Self::DEFAULT_RISE,
            fall: Self::DEFAULT_FALL,
            weight: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// `GET url` (http or https) answered with `expect_status`.
    Http {
        url: String,
        expect_status: u16,
        /// How an `https://` URL's certificate is verified (all default for `http://`).
        tls: HttpTls,
    },
    /// A TCP connect to `host:port` that completes.
    Tcp { addr: SocketAddr },
    /// A command (no shell) that exits 0.
    Exec { argv: Vec<String> },
}

/// Certificate verification of an https check. The default is what an operator expects of
/// any HTTPS client: the system's root CAs and the URL's host as the name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct HttpTls {
    /// PEM file of the CA(s) to trust instead of the system roots (a private CA such as
    /// kubeadm's `/etc/kubernetes/pki/ca.crt`). Read when the check starts.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry (and the SNI sent); `None`: the URL's
    /// host.
    pub server_name: Option<String>,
    /// Accept any certificate (the connection is still TLS). Never with `ca_file`.
    pub insecure_skip_verify: bool,
}

/// Gratuitous ARP / unsolicited NA on becoming master. One packet is not enough on real
/// networks (switches and routers miss or age it), hence a burst and an optional refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announce {
    pub count: u32,
    pub interval: Duration,
    /// Periodic re-announcement while master; zero = off.
    pub refresh: Duration,
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            count: 5,
            interval: Duration::from_millis(200),
            refresh: Duration::ZERO,
        }
    }
}

/// `announce: arp` (VRRP, gratuitous ARP / unsolicited NA) or `announce: bgp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceMode {
    #[default]
    Arp,
    /// Every node whose checks pass announces each VIP as a host route to the peers of
    /// [`Bgp`]; the VIPs sit on `lo`.
    Bgp(BgpRouteAttrs),
}

impl AnnounceMode {
    pub fn is_bgp(&self) -> bool {
        matches!(self, AnnounceMode::Bgp(_))
    }
}

/// Path attributes set on a VIP's route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct BgpRouteAttrs {
    pub communities: Vec<Community>,
    /// LOCAL_PREF (iBGP peers only see it); `None`: FRR's default (100).
    pub local_preference: Option<u32>,
}

/// A BGP community as FRR writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Community {
    /// RFC 1997 `ASN:VALUE`, 16 bits each.
    Standard(u16, u16),
    /// RFC 8092 `GLOBAL:DATA1:DATA2`, 32 bits each.
    Large(u32, u32, u32),
    /// RFC 1997 well-known NO_EXPORT.
    NoExport,
    /// RFC 1997 well-known NO_ADVERTISE.
    NoAdvertise,
}

impl Community {
    /// `65000:100`, `65000:1:2`, `no-export`, `no-advertise`.
    pub fn parse(s: &str) -> Result<Community, String> {
        match s {
            "no-export" => return Ok(Community::NoExport),
            "no-advertise" => return Ok(Community::NoAdvertise),
            _ => {}
        }
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || {
            format!(
                "{s:?} is not a community (ASN:VALUE in 0..65535, GLOBAL:DATA1:DATA2 in \
                 0..4294967295, no-export, no-advertise)"
            )
        };
        let all_digits = parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !all_digits {
            return Err(bad());
        }
        match parts.as_slice() {
            [a, b] => match (a.parse(), b.parse()) {
                (Ok(a), Ok(b)) => Ok(Community::Standard(a, b)),
                _ => Err(bad()),
            },
            [a, b, c] => match (a.parse(), b.parse(), c.parse()) {
                (Ok(a), Ok(b), Ok(c)) => Ok(Community::Large(a, b, c)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    pub fn is_large(&self) -> bool {
        matches!(self, Community::Large(..))
    }
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(a, b, c) => write!(f, "{a}:{b}:{c}"),
            Community::NoExport => f.write_str("no-export"),
            Community::NoAdvertise => f.write_str("no-advertise"),
        }
    }
}

/// The node's BGP speaker. edgevip renders FRR's configuration from it and never speaks
/// BGP itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bgp {
    /// Local AS number (4-byte ASNs welcome; 0 and AS_TRANS 23456 are not).
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub peers: Vec<BgpPeer>,
    /// Attributes of every VIP's route unless its instance sets its own.
    pub defaults: BgpRouteAttrs,
    /// The `frr.conf` edgevip owns and frr-reload applies (default `/etc/frr/frr.conf`).
    pub frr_config: PathBuf,
    /// The FRR daemons' `--vty_socket` directory; `None`: FRR's default.
    pub frr_vty_socket: Option<PathBuf>,
    /// On a graceful stop, after no peer is advertised a VIP any more: how long the VIPs
    /// stay on `lo` for connections the routers still send (default 1s, at most 5m).
    pub drain_time: Duration,
}

impl BgpRouteAttrs {
    /// The instance's own attributes, field by field, else `defaults`'.
    pub fn or(&self, defaults: &BgpRouteAttrs) -> BgpRouteAttrs {
        BgpRouteAttrs {
            communities: if self.communities.is_empty() {
                defaults.communities.clone()
            } else {
                self.communities.clone()
            },
            local_preference: self.local_preference.or(defaults.local_preference),
        }
    }
}

impl Bgp {
    pub const DEFAULT_PORT: u16 = 179;
    /// MetalLB's defaults (FRR's own are 180 s / 60 s).
    pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
    pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
    pub const DEFAULT_FRR_CONFIG: &str = "/etc/frr/frr.conf";
    pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(1);
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BgpPeer {
    pub address: IpAddr,
    pub asn: u32,
    pub port: u16,
    /// TCP MD5 signature (RFC 2385) key; printable ASCII without spaces, at most 80 bytes.
    pub password: Option<String>,
    /// Whole seconds; 0 turns keepalives off, else 3..65535.
    pub hold_time: Duration,
    /// Whole seconds, below the hold time.
    pub keepalive: Duration,
    pub bfd: Option<Bfd>,
    /// eBGP peers more than one hop away: the TTL; `None`: directly connected.
    pub ebgp_multihop: Option<u8>,
}

/// BFD (RFC 5880) for a peer: down after `multiplier` missed packets sent every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Bfd {
    pub interval: Duration,
    pub multiplier: u8,
}

impl Bfd {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(300);
    pub const DEFAULT_MULTIPLIER: u8 = 3;

    /// How long a silent peer stays up.
    pub fn detection_time(&self) -> Duration {
        self.interval * u32::from(self.multiplier)
    }
}

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// What an instance gets for the fields it leaves out. `Defaults::default()` is the file's;
/// Kubernetes mode passes what the cluster and the command line decide, typed, so that a
/// default is never written out and parsed again. The merged result goes through the same
/// validation as a file's entry (e.g. a default advert interval that a VRRPv2 entry cannot
/// use is reported at that entry's `advert_interval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `None`: the field is required.
    pub interface: Option<String>,
    pub priority: u8,
    pub advert_interval: Duration,
    pub preempt: bool,
    /// For an entry that sets neither `unicast` nor `unicast_peers`. `None`: multicast;
    /// `Some(peers)`: unicast to those peers whose family one of the entry's VIPs uses
    /// (none yet is fine: a one-node cluster).
    pub unicast_peers: Option<Vec<IpAddr>>,
    /// For an entry that has no `health_checks` key (an empty list means none).
    pub health_checks: Vec<HealthCheck>,
    /// For an entry without `unicast_src`.
    pub unicast_src: Option<IpAddr>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            interface: None,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            unicast_peers: None,
            health_checks: Vec::new(),
            unicast_src: None,
        }
    }
}

impl Instance {
    /// Validates one entry on its own, with `defaults` for what it leaves out (the
    /// Kubernetes sources build instances entry by entry, so that a bad entry is rejected
    /// alone); `path` prefixes the error paths.
    pub fn from_raw(
        path: &str,
        raw: raw::Instance,
        defaults: &Defaults,
    ) -> Result<Instance, ConfigErrors> {
        validate::instance_alone(path, raw, defaults)
    }
}

/// The rules across instances (unique names, VRIDs per interface and family, VIPs).
pub fn check_instances(instances: &[Instance]) -> Vec<FieldError> {
    validate::cross_errors(instances)
}

/// Kubernetes mode builds BGP peers from `BGPPeer` objects; they are validated exactly as
/// the file's `bgp.peers[]` entries, errors under `path`.
pub fn bgp_peer(path: &str, raw: raw::BgpPeer, local_asn: u32) -> Result<BgpPeer, Vec<FieldError>> {
    validate::peer_alone(path, raw, local_asn)
}

/// A local or peer AS number, validated as `bgp.asn`.
pub fn bgp_asn(path: &str, v: i64) -> Result<u32, Vec<FieldError>> {
    validate::asn_alone(path, v)
}

/// Route attributes (communities, LOCAL_PREF) validated as an instance's; `path` is the
/// object holding them.
pub fn bgp_route_attrs(
    path: &str,
    communities: Vec<String>,
    local_preference: Option<i64>,
) -> Result<BgpRouteAttrs, Vec<FieldError>> {
    validate::route_attrs_alone(path, communities, local_preference)
}

/// Parses and validates a YAML document.
pub fn parse(yaml: &str) -> Result<Config, ConfigErrors> {
    let file: raw::File = if yaml.trim().is_empty() {
        raw::File::default()
    } else {
        serde_saphyr::from_str(yaml).map_err(|e| {
            ConfigErrors(vec![FieldError {
                path: String::new(),
                message: e.to_string(),
            }])
        })?
    };
    validate::validate(file)
}

/// Reads, parses and validates a file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![FieldError {
            path: path.display().to_string(),
            message: e.to_string(),
        }])
    })?;
    parse(&text)
}
