//! Which edge nodes may hold a ConfigMap VIP, from where its Service's endpoints are.
//! Pure: the controller calls it after each build, with the cached EndpointSlices.
//!
//! Ingress usually runs on the pod network, so the node holding the VIP need not run it:
//! NAT forwards across the cluster. By default a node is eligible while the target Service
//! has a ready endpoint anywhere; `LocalEndpoint` asks for one on this node. Only forwarded
//! entries (NAT, PROXY) count: a DR entry, or any entry with forwarding off, is not gated. The local HTTP
//! check of the ingress is for ingress on the host network: given explicitly, or (`Auto`)
//! added when an endpoint's address is an edge node's address.
//!
//! The compat entries share one instance: it is eligible while any of their Services is
//! (one Service without endpoints must not take the others' VIPs away), and a failing check
//! steps it back for all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use edgevip_config::{HealthCheck, Instance};

use crate::compat::Method;
use crate::desired::{COMPAT_INSTANCE, Desired};
use crate::forwarding::Slice;
use crate::nodes::NodeInfo;

/// Where a node must see ready endpoints to hold a ConfigMap VIP (`--eligibility`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eligibility {
    /// Anywhere in the cluster: NAT or PROXY forwards to them (default).
    #[default]
    AnyEndpoint,
    /// On this node: traffic never crosses nodes (source IP kept without SNAT tricks).
    LocalEndpoint,
}

/// The local ingress check (`--ingress-check`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum IngressCheck {
    /// Never.
    #[default]
    Off,
    /// For every instance without checks of its own.
    Always(HealthCheck),
    /// For the compat instance, once its Services' endpoints show the ingress on the host
    /// network (an endpoint address is an edge node's address).
    Auto(HealthCheck),
}

impl IngressCheck {
    /// The check every instance without its own gets.
    pub fn default_checks(&self) -> Vec<HealthCheck> {
        match self {
            IngressCheck::Always(c) => vec![c.clone()],
            IngressCheck::Off | IngressCheck::Auto(_) => Vec::new(),
        }
    }
}

/// What the endpoints say about one set of Services, for this node.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    ready_anywhere: bool,
    ready_here: bool,
    on_host_network: bool,
}

fn seen(
    services: &BTreeSet<String>,
    slices: &BTreeMap<String, Slice>,
    me: &str,
    node_addrs: &BTreeSet<IpAddr>,
) -> Seen {
    let mut s = Seen::default();
    for sl in slices.values().filter(|sl| services.contains(&sl.service)) {
        s.ready_anywhere |= !sl.addresses.is_empty();
        s.ready_here |= sl.nodes.contains(me);
        s.on_host_network |= sl.addresses.iter().any(|a| node_addrs.contains(a));
    }
    s
}

/// Marks the compat instance ineligible where the endpoints say so and adds the ingress
/// check when `Auto` finds the ingress on the host network. Call only when EndpointSlices
/// are watched (forwarding on): without them nothing is known and nothing is gated.
pub fn apply(
    d: &mut Desired,
    mode: Eligibility,
    check: &IngressCheck,
    slices: &BTreeMap<String, Slice>,
    nodes: &[NodeInfo],
    me: &str,
) {
    // Only what is forwarded: a DR entry's traffic never reaches its endpoints through us.
    let services: BTreeSet<String> = d
        .services
        .iter()
        .filter(|(_, r)| matches!(r.method, Method::Nat | Method::Proxy))
        .map(|(_, r)| format!("{}/{}", r.namespace, r.name))
        .collect();
    let Some(inst) = d.instances.iter_mut().find(|i| i.name == COMPAT_INSTANCE) else {
        return;
    };
    if services.is_empty() {
        return;
    }
    let node_addrs = nodes
        .iter()
        .flat_map(|n| n.addresses.iter().copied())
        .collect();
    let s = seen(&services, slices, me, &node_addrs);
    let list = || services.iter().cloned().collect::<Vec<_>>().join(", ");
    inst.ineligible = match mode {
        Eligibility::AnyEndpoint if !s.ready_anywhere => {
            Some(format!("no ready endpoint of {}", list()))
        }
        Eligibility::LocalEndpoint if !s.ready_here => {
            Some(format!("no ready endpoint of {} on this node", list()))
        }
        _ => None,
    };
    if let IngressCheck::Auto(c) = check
        && s.on_host_network
        && !has_check(inst, &c.name)
    {
        inst.health_checks.push(c.clone());
    }
}

fn has_check(i: &Instance, name: &str) -> bool {
    i.health_checks.iter().any(|c| c.name == name)
}

#[cfg(test)]
mod tests;
