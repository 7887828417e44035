//! What the daemon reports about its instances: one board, written by the instance tasks,
//! read by the HTTP API. The JSON shape of `/status` is a contract.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One RFC virtual router of an instance (dual-stack instances run one per family).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouterStatus {
    pub family: String,
    pub state: String,
    pub effective_priority: u8,
    pub master: Option<String>,
    pub transitions: u64,
    pub since: String,
}

/// One configured instance, as `/status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceStatus {
    pub name: String,
    /// init | backup | master | fault (of the instance's first family), or failed (could
    /// not start; see `error`).
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    /// Primary address of the current master, or null.
    pub master: Option<String>,
    pub vips: Vec<String>,
    pub transitions: u64,
    /// When `state` was entered, RFC 3339.
    pub since: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub routers: Vec<RouterStatus>,
    /// Why the instance is not running (state `failed`): it is retried with backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Kubernetes mode: why this node may not hold the VIPs now (state `fault`), e.g. no
    /// ready endpoint of the forwarded Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ineligible: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Status {
    pub instances: Vec<InstanceStatus>,
    /// Kubernetes mode only: caches, sources, rejected entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<serde_json::Value>,
    /// The BGP speaker, when `announce: bgp` instances or a `bgp:` section exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpStatus>,
}

/// The BGP mode as `/status` shows it: what edgevip asked FRR to announce, and what FRR
/// reports back (read every few seconds and after each change).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BgpStatus {
    /// Host routes FRR was last told to announce.
    pub announced: Vec<String>,
    pub instances: Vec<BgpInstanceStatus>,
    pub peers: Vec<BgpPeerStatus>,
    /// The last failure applying FRR's configuration or reading its state; null when the
    /// last attempt worked.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BgpInstanceStatus {
    pub name: String,
    pub vips: Vec<String>,
    /// Every check passing: the VIPs are in `announced`.
    pub announced: bool,
    /// Checks failing or without a verdict yet.
    pub failing_checks: Vec<String>,
    /// Why Kubernetes mode says this node must not serve the instance (e.g. no ready local
    /// endpoint for `externalTrafficPolicy: Local`); not announced while set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ineligible: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BgpPeerStatus {
    pub address: String,
    /// bgpd's state (`Established`, `Active`, `Idle`, …), or `unknown` before FRR knows it.
    pub state: String,
    pub uptime_ms: Option<u64>,
    /// BFD session status (`up`, `down`, `init`), null without BFD.
    pub bfd: Option<String>,
    /// Prefixes advertised to the peer now.
    pub advertised: Vec<String>,
}

/// Shared, cheap to clone. Writers replace one instance's entry at a time.
#[derive(Debug, Clone, Default)]
pub struct Board(
    Arc<RwLock<BTreeMap<String, InstanceStatus>>>,
    Arc<RwLock<Option<BgpStatus>>>,
);

impl Board {
    pub fn set(&self, s: InstanceStatus) {
        self.0
            .write()
            .expect("status lock")
            .insert(s.name.clone(), s);
    }

    pub fn remove(&self, name: &str) {
        self.0.write().expect("status lock").remove(name);
    }

    /// Instances that could not start, with the reason (`/readyz` names them).
    pub fn failed(&self) -> Vec<(String, String)> {
        self.0
            .read()
            .expect("status lock")
            .values()
            .filter_map(|s| Some((s.name.clone(), s.error.clone()?)))
            .collect()
    }

    pub fn snapshot(&self) -> Status {
        Status {
            instances: self
                .0
                .read()
                .expect("status lock")
                .values()
                .cloned()
                .collect(),
            kubernetes: None,
            bgp: self.1.read().expect("status lock").clone(),
        }
    }

    pub fn set_bgp(&self, s: Option<BgpStatus>) {
        *self.1.write().expect("status lock") = s;
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The readable table `edgevip status` prints.
pub fn table(s: &Status) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "PRIO".into(),
        "MASTER".into(),
        "VIPS".into(),
        "TRANSITIONS".into(),
        "SINCE".into(),
    ]];
    for i in &s.instances {
        rows.push([
            i.name.clone(),
            i.state.clone(),
            if i.priority == i.effective_priority {
                i.priority.to_string()
            } else {
                format!("{}/{}", i.effective_priority, i.priority)
            },
            i.master.clone().unwrap_or_else(|| "-".into()),
            i.vips.join(","),
            i.transitions.to_string(),
            i.since.clone(),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if let Some(b) = &s.bgp {
        out.push_str(&bgp_lines(b));
    }
    out
}

/// The BGP part of `edgevip status`: one line per instance and per peer.
fn bgp_lines(b: &BgpStatus) -> String {
    let mut out = String::from("\nBGP\n");
    for i in &b.instances {
        let state = if i.announced {
            "announced".to_string()
        } else if let Some(why) = &i.ineligible {
            format!("withdrawn (ineligible: {why})")
        } else {
            format!("withdrawn (failing: {})", i.failing_checks.join(","))
        };
        out.push_str(&format!("  {}  {}  {}\n", i.name, i.vips.join(","), state));
    }
    for p in &b.peers {
        let up = p
            .uptime_ms
            .map(|ms| format!(" for {}s", ms / 1000))
            .unwrap_or_default();
        let bfd = p.bfd.as_deref().unwrap_or("off");
        out.push_str(&format!(
            "  peer {}  {}{up}  bfd {bfd}  advertised {}\n",
            p.address,
            p.state,
            p.advertised.len()
        ));
    }
    if let Some(e) = &b.error {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}
