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

/// `externalTrafficPolicy: Local` Services: kube-proxy drops their traffic on a node without
/// a ready endpoint of theirs, so an instance carrying one is eligible only on a node with
/// a ready endpoint of each such Service it carries; one with a ready endpoint on no edge
/// node is held nowhere, and its owner is told.
pub fn local_endpoints(
    d: &mut Desired,
    slices: &BTreeMap<String, Slice>,
    nodes: &[NodeInfo],
    me: &str,
) {
    if d.lb.local.is_empty() {
        return;
    }
    let mut ready_on: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for sl in slices
        .values()
        .filter(|sl| d.lb.local.contains(&sl.service))
    {
        let on = ready_on.entry(sl.service.as_str()).or_default();
        on.extend(sl.nodes.iter().map(String::as_str));
    }
    let ready_here = |k: &str| ready_on.get(k).is_some_and(|n| n.contains(me));
    for (name, keys) in &d.lb_groups {
        let missing: Vec<&str> = keys
            .iter()
            .filter(|k| d.lb.local.contains(*k) && !ready_here(k))
            .map(String::as_str)
            .collect();
        let Some(inst) = d.instances.iter_mut().find(|i| &i.name == name) else {
            continue;
        };
        if !missing.is_empty() {
            inst.ineligible = Some(format!(
                "no ready endpoint of {} on this node (externalTrafficPolicy: Local)",
                missing.join(", ")
            ));
        }
    }
    for key in &d.lb.local {
        let anywhere = ready_on
            .get(key.as_str())
            .is_some_and(|on| nodes.iter().any(|n| on.contains(n.name.as_str())));
        if !anywhere && d.lb.serving.contains_key(key) {
            d.lb.notes.insert(
                key.clone(),
                "externalTrafficPolicy: Local and no edge node has a ready endpoint: \
                 the VIP is held by no node until one has"
                    .into(),
            );
        }
    }
}

fn has_check(i: &Instance, name: &str) -> bool {
    i.health_checks.iter().any(|c| c.name == name)
}

#[cfg(test)]
mod tests;
