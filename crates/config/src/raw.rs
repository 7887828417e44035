//! The file as written: loose types (numbers as i64, durations and addresses as strings), so
//! that an out-of-range or malformed value reaches validation and gets an error naming its
//! path and value instead of a bare type error.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub api: Option<Api>,
    pub log: Option<Log>,
    #[serde(default)]
    pub instances: Vec<Instance>,
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
    pub announce: Option<Announce>,
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
