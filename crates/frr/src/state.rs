//! vtysh's JSON → what edgevip reports. Parsed leniently (FRR adds and renames fields
//! between releases): a missing field is `None` or zero, never an error; only text that is
//! not the expected JSON shape at all is.
//!
//! The shapes, as FRR 8.4 prints them:
//! - `show bgp summary json`: `{"ipv4Unicast": {"peers": {"192.0.2.1": {"state":
//!   "Established", "peerUptimeMsec": 23000, "pfxSnt": 1, "pfxRcd": 0, …}}}, "ipv6Unicast":
//!   …}`; a family without peers is absent or `{}`.
//! - `show bfd peers json`: `[{"peer": "192.0.2.1", "status": "up", "uptime": 22,
//!   "receive-interval": 100, "detect-multiplier": 3, …}]` (uptime in seconds).
//! - `show ip bgp neighbors X advertised-routes json`: `{"advertisedRoutes":
//!   {"203.0.113.10/32": {…}}, "totalPrefixCounter": 1}`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct ParseError {
    pub what: &'static str,
    pub message: String,
}

/// One BGP session as bgpd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub peer: IpAddr,
    /// bgpd's FSM state: `Established`, `Active`, `Connect`, `Idle`, `OpenSent`, …
    pub state: String,
    /// Time since the session was established (only while it is).
    pub uptime: Option<Duration>,
    pub prefixes_sent: u64,
    pub prefixes_received: u64,
    /// How many times it was established and dropped since bgpd started: a session reset
    /// by a reload shows here even when it came back at once.
    pub established_count: u64,
    pub dropped_count: u64,
}

impl Session {
    pub fn is_established(&self) -> bool {
        self.state == "Established"
    }
}

/// One BFD session as bfdd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BfdSession {
    pub peer: IpAddr,
    /// `up`, `down`, `init`, `shutdown`.
    pub status: String,
    pub uptime: Option<Duration>,
    pub receive_interval: Option<Duration>,
    pub transmit_interval: Option<Duration>,
    pub multiplier: Option<u64>,
}

/// `show bgp summary json` → sessions by peer address (a peer active in two families
/// appears once, with its prefix counts summed).
pub fn sessions(json: &str) -> Result<Vec<Session>, ParseError> {
    let what = "show bgp summary json";
    let v: Value = serde_json::from_str(json).map_err(|e| ParseError {
        what,
        message: e.to_string(),
    })?;
    let Some(families) = v.as_object() else {
        return Err(ParseError {
            what,
            message: "not a JSON object".into(),
        });
    };
    let mut out: BTreeMap<IpAddr, Session> = BTreeMap::new();
    for family in families.values() {
        let Some(peers) = family.get("peers").and_then(Value::as_object) else {
            continue;
        };
        for (addr, p) in peers {
            let Ok(peer) = addr.parse::<IpAddr>() else {
                continue; // an interface peer (unnumbered): not one edgevip configures
            };
            let num = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
            let state = p
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            let uptime = (state == "Established")
                .then(|| p.get("peerUptimeMsec").and_then(Value::as_u64))
                .flatten()
                .map(Duration::from_millis);
            let s = out.entry(peer).or_insert_with(|| Session {
                peer,
                state: state.clone(),
                uptime,
                prefixes_sent: 0,
                prefixes_received: 0,
                established_count: num("connectionsEstablished"),
                dropped_count: num("connectionsDropped"),
            });
            s.prefixes_sent += num("pfxSnt");
            s.prefixes_received += num("pfxRcd");
        }
    }
    Ok(out.into_values().collect())
}

/// `show bfd peers json` → BFD sessions.
pub fn bfd_sessions(json: &str) -> Result<Vec<BfdSession>, ParseError> {
    let what = "show bfd peers json";
    let v: Value = serde_json::from_str(json).map_err(|e| ParseError {
        what,
        message: e.to_string(),
    })?;
    let Some(list) = v.as_array() else {
        return Err(ParseError {
            what,
            message: "not a JSON array".into(),
        });
    };
    let ms = |p: &Value, k: &str| p.get(k).and_then(Value::as_u64).map(Duration::from_millis);
    Ok(list
        .iter()
        .filter_map(|p| {
            let peer = p.get("peer")?.as_str()?.parse::<IpAddr>().ok()?;
            let status = p.get("status")?.as_str()?.to_string();
            Some(BfdSession {
                peer,
                uptime: (status == "up")
                    .then(|| p.get("uptime").and_then(Value::as_u64))
                    .flatten()
                    .map(Duration::from_secs),
                status,
                receive_interval: ms(p, "receive-interval"),
                transmit_interval: ms(p, "transmit-interval"),
                multiplier: p.get("detect-multiplier").and_then(Value::as_u64),
            })
        })
        .collect())
}

/// `show ip bgp neighbors X advertised-routes json` → the prefixes advertised, sorted.
/// bgpd answers a peer that is not established with a warning object and no routes: that
/// is an empty list, not an error.
pub fn advertised(json: &str) -> Result<Vec<String>, ParseError> {
    let v: Value = serde_json::from_str(json).map_err(|e| ParseError {
        what: "advertised-routes json",
        message: e.to_string(),
    })?;
    let mut out: Vec<String> = v
        .get("advertisedRoutes")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    out.sort();
    Ok(out)
}

/// Everything edgevip reports about the node's speaker, per configured peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Speaker {
    pub peers: Vec<PeerState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerState {
    pub peer: IpAddr,
    /// `None`: bgpd does not know the peer (not configured yet).
    pub session: Option<Session>,
    /// `None`: no BFD session for this peer.
    pub bfd: Option<BfdSession>,
    /// Prefixes advertised to the peer now (empty unless established).
    pub advertised: Vec<String>,
}

impl Speaker {
    /// True when no peer is advertising anything: what a graceful stop waits for.
    pub fn advertises_nothing(&self) -> bool {
        self.peers.iter().all(|p| p.advertised.is_empty())
    }

    pub fn peer(&self, addr: IpAddr) -> Option<&PeerState> {
        self.peers.iter().find(|p| p.peer == addr)
    }
}

#[cfg(test)]
mod tests;
