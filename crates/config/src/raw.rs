//! The file as written: loose types (numbers as i64, durations and addresses as strings), so
//! that an out-of-range or malformed value reaches validation and gets an error naming its
//! path and value instead of a bare type error.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub api: Option<Api>,
    pub log: Option<Log>,
    pub bgp: Option<Bgp>,
    #[serde(default)]
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    pub asn: Option<i64>,
    pub router_id: Option<String>,
    #[serde(default)]
    pub peers: Vec<BgpPeer>,
    #[serde(default)]
    pub communities: Vec<String>,
    pub local_preference: Option<i64>,
    pub frr_config: Option<String>,
    pub frr_vty_socket: Option<String>,
    pub drain_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeer {
    pub address: Option<String>,
    pub asn: Option<i64>,
    pub port: Option<i64>,
    pub password: Option<String>,
    pub hold_time: Option<String>,
    pub keepalive: Option<String>,
    pub bfd: Option<Bfd>,
    pub ebgp_multihop: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bfd {
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub multiplier: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub listen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: Option<String>,
    pub interface: Option<String>,
    pub vrid: Option<i64>,
    pub priority: Option<i64>,
    pub version: Option<i64>,
    pub advert_interval: Option<String>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<String>,
    #[serde(default)]
    pub vips: Vec<String>,
    /// Absent (not merely empty) lets [`crate::Defaults::unicast_peers`] apply.
    pub unicast_peers: Option<Vec<String>>,
    pub unicast: Option<bool>,
    pub auth_pass: Option<String>,
    #[serde(default)]
    pub track_interfaces: Vec<Track>,
    /// `arp`, `bgp`, or the GARP / NA burst map (which means `arp`).
    pub announce: Option<AnnounceField>,
    /// `announce: bgp` only: communities of the VIPs' routes (replace `bgp.communities`).
    pub communities: Option<Vec<String>>,
    /// `announce: bgp` only: LOCAL_PREF of the VIPs' routes.
    pub local_preference: Option<i64>,
    pub v3_checksum_pseudo_header: Option<bool>,
    pub unicast_min_ttl: Option<i64>,
    /// Absent lets [`crate::Defaults::unicast_src`] apply.
    pub unicast_src: Option<String>,
    pub handoff: Option<bool>,
    pub strict_vip_list: Option<bool>,
    /// Absent (not merely empty) lets [`crate::Defaults::health_checks`] apply.
    pub health_checks: Option<Vec<HealthCheck>>,
    #[serde(default)]
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub name: Option<String>,
    pub http: Option<HttpCheck>,
    pub tcp: Option<String>,
    pub exec: Option<Vec<String>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: Option<String>,
    pub expect_status: Option<i64>,
    /// https only: PEM file of the CA(s) to trust instead of the system roots.
    pub ca_file: Option<String>,
    /// https only: the name the certificate must carry (and the SNI sent), when it is not
    /// the URL's host (kube-apiserver at `https://127.0.0.1:6443` presents `kubernetes`).
    pub server_name: Option<String>,
    /// https only: accept any certificate. Explicit, never a default.
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    pub name: Option<String>,
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    pub count: Option<i64>,
    pub interval: Option<String>,
    pub refresh: Option<String>,
}

/// `announce:` is a word (`arp`, `bgp`) or, as before the BGP mode existed, the map of the
/// GARP / NA burst (an `arp` instance). Deserialized by hand so that a bad map keeps the
/// map's own error instead of an untagged enum's "did not match any variant".
#[derive(Debug, Clone, PartialEq)]
pub enum AnnounceField {
    Mode(String),
    Burst(Announce),
}

impl<'de> Deserialize<'de> for AnnounceField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AnnounceField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("arp, bgp, or a map {count, interval, refresh}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AnnounceField, E> {
                Ok(AnnounceField::Mode(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AnnounceField, A::Error> {
                Announce::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(AnnounceField::Burst)
            }
        }
        d.deserialize_any(V)
    }
}
