//! Kubernetes mode: the cluster, not a file, says which VIPs exist and who the peers are.
//!
//! - `compat` and `rich` read the two ConfigMap formats (kube-keepalived-vip's entries and
//!   edgevip's YAML), `nodes` reads the edge Nodes; all pure.
//! - `desired` turns them into the same `edgevip_config::Instance`s a file gives, entry by
//!   entry, so one bad entry is rejected alone and a once-good entry keeps its last good form.
//! - `controller` follows the API with watches and hands each new desired state over: one
//!   generic cache per watch (`controller::cache`), a pure `World` that rebuilds from them,
//!   and a thin `run` that wires streams and timers to it; `events` tells the cluster what
//!   happened.
//! - `trust` holds what the admin's command line lets the cluster decide: which addresses
//!   may be VIPs, which ConfigMap fields beyond VIPs are allowed.
//! - LoadBalancer Services: `pools` reads VIPPools (and `--address-pool`), `services` plans
//!   who gets which addresses, `spread` puts each VIP on the VRRP instance of its VRID,
//!   `lease` elects the one pod that records the plan in Service status.
#![forbid(unsafe_code)]

pub mod bgp_peers;
pub mod compat;
pub mod controller;
pub mod desired;
pub mod eligibility;
pub mod events;
pub mod forwarding;
#[doc(hidden)]
pub mod fuzz;
pub mod lease;
pub mod nodes;
pub mod pools;
pub mod rich;
pub mod services;
pub mod spread;
pub mod trust;

/// One rejected (or merely warned about) piece of input, with the field that holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Reject {
    /// `ConfigMap ns/name` or `Node name`.
    pub object: String,
    /// e.g. `data["192.0.2.10"]` or `edgevip.yaml: instances[1].vrid`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.object, self.field, self.message)
    }
}
