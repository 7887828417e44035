//! From what the cluster says (the ConfigMap, the edge Nodes, this node) to the instances
//! this node runs. Pure: the controller calls it after every change, and the engine only
//! touches instances whose result differs, so an unrelated change moves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use edgevip_config::{HealthCheck, Instance, format_duration};
use serde_json::{Map, Value, json};

use crate::compat::{self, Method, ServiceRef};
use crate::nodes::{self, NodeInfo};
use crate::services::{self, LbSettings, Plan, SvcInfo};
use crate::{Reject, rich};

/// Name of the instance that carries the compat entries' VIPs.
pub const COMPAT_INSTANCE: &str = "vips";
/// Name of the instance that carries the LoadBalancer Services' VIPs.
pub const LB_INSTANCE: &str = "loadbalancers";

/// This node's settings (command line).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub node_name: String,
    /// VRID of the compat instance.
    pub vrid: u8,
    /// Interface for instances that name none; `None`: the one holding the node address.
    pub interface: Option<String>,
    pub unicast: bool,
    pub advert_interval: Duration,
    /// kube-keepalived-vip ran `nopreempt`: a recovered node does not take the VIP back.
    pub preempt: bool,
    /// The check of the local ingress given to instances that define none.
    pub ingress_check: Option<HealthCheck>,
    /// LoadBalancer Services mode, when enabled.
    pub lb: Option<LbSettings>,
    /// Forward `NAT` / `PROXY` entries to their Service's endpoints.
    pub forwarding: bool,
    pub proxy_header: edgevip_forward::ProxyHeader,
}

/// The ConfigMap as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// `ConfigMap ns/name`, for messages and Events.
    pub object: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    pub instances: Vec<Instance>,
    /// Entries rejected (their VIPs are not served, or served in their last good form).
    pub rejects: Vec<Reject>,
    /// Accepted with a caveat the operator must know (e.g. an unsupported method).
    pub warnings: Vec<Reject>,
    /// VIP → Service of the compat entries (forwarding is done elsewhere).
    pub services: Vec<(IpAddr, ServiceRef)>,
    /// LoadBalancer Services: what is served, what to record, what failed.
    pub lb: Plan,
    /// This node writes Service status.
    pub writer: bool,
    /// What to forward (filled in by the controller from Services and EndpointSlices).
    pub forward: edgevip_forward::Spec,
}

/// Builds desired states, remembering each rich entry's last good form: an entry that an
/// edit breaks keeps running as it was instead of releasing its VIPs.
#[derive(Debug, Default)]
pub struct Builder {
    last_good: BTreeMap<String, Value>,
    last_doc: Option<rich::Doc>,
}

impl Builder {
    pub fn build(
        &mut self,
        s: &Settings,
        nodes: &[NodeInfo],
        node_interface: Option<&str>,
        source: Option<&Source>,
        lb_services: &[SvcInfo],
    ) -> Desired {
        let mut d = Desired::default();
        let empty = Source {
            object: format!("Node {}", s.node_name),
            data: BTreeMap::new(),
        };
        let src = source.unwrap_or(&empty);
        let obj = src.object.clone();
        let reject = |d: &mut Desired, field: String, message: String| {
            d.rejects.push(Reject {
                object: obj.clone(),
                field,
                message,
            })
        };
        let Some(me) = nodes.iter().find(|n| n.name == s.node_name) else {
            reject(
                &mut d,
                "node".into(),
                format!(
                    "this node {:?} is not among the edge nodes (selector): serving nothing",
                    s.node_name
                ),
            );
            return d;
        };
        if me.addresses.is_empty() {
            reject(
                &mut d,
                "node".into(),
                format!("node {:?} has no InternalIP address", me.name),
            );
            return d;
        }
        let ctx = Ctx {
            s,
            nodes,
            me,
            interface: s.interface.as_deref().or(node_interface),
        };
        d.writer = nodes::writer(nodes).is_some_and(|w| w.name == me.name);

        // The compat entries: one instance with all their VIPs.
        let (entries, errors) = compat::parse(&src.data, &[rich::KEY]);
        for (key, m) in errors {
            reject(&mut d, format!("data[{key:?}]"), m);
        }
        let mut candidates: Vec<(String, Value, Option<Value>)> = Vec::new();
        if !entries.is_empty() {
            for e in &entries {
                if let Some(svc) = &e.service {
                    d.services.push((e.vip, svc.clone()));
                    let why = match svc.method {
                        Method::Dr => {
                            "DR needs IPVS, which edgevip does not use; the VIP is served, nothing is forwarded for it"
                        }
                        Method::Nat | Method::Proxy if !s.forwarding => {
                            "forwarding is off (--forwarding=false); the VIP is served and reaches what listens on the node"
                        }
                        Method::Nat | Method::Proxy => continue,
                    };
                    d.warnings.push(Reject {
                        object: obj.clone(),
                        field: format!("data[\"{}\"]", e.vip),
                        message: format!(
                            "{:?} for {}/{}: {why}",
                            svc.method, svc.namespace, svc.name
                        ),
                    });
                }
            }
            let vips: Vec<String> = entries.iter().map(|e| e.vip.to_string()).collect();
            candidates.push((
                "data".into(),
                json!({"name": COMPAT_INSTANCE, "vrid": s.vrid, "vips": vips}),
                None,
            ));
        }

        // LoadBalancer Services: one instance with every recorded VIP.
        if let Some(lb) = &s.lb {
            d.lb = services::plan(lb_services, lb);
            let mut vips: Vec<IpAddr> = d.lb.serving.values().copied().collect();
            vips.sort();
            vips.dedup();
            if !vips.is_empty() {
                let vips: Vec<String> = vips.iter().map(|v| v.to_string()).collect();
                candidates.push((
                    "services".into(),
                    json!({"name": LB_INSTANCE, "vrid": lb.vrid, "vips": vips}),
                    None,
                ));
            }
        }

        // The rich document: a broken one keeps the last good document.
        let doc = match src.data.get(rich::KEY).map(|t| rich::parse(t)) {
            None => rich::Doc::default(),
            Some(Ok(doc)) => {
                self.last_doc = Some(doc.clone());
                doc
            }
            Some(Err(m)) => {
                let kept = self.last_doc.clone().unwrap_or_default();
                reject(
                    &mut d,
                    format!("data[{:?}]", rich::KEY),
                    format!(
                        "{m}; keeping the last good document ({} instances)",
                        kept.instances.len()
                    ),
                );
                kept
            }
        };
        for (i, v) in doc.instances.iter().enumerate() {
            let name = v.get("name").and_then(Value::as_str).map(str::to_string);
            let fallback = name.as_ref().and_then(|n| self.last_good.get(n).cloned());
            candidates.push((
                format!("{}: instances[{i}]", rich::KEY),
                v.clone(),
                fallback,
            ));
        }

        for (index, (path, value, fallback)) in candidates.into_iter().enumerate() {
            let spread = doc.spread && path.starts_with(rich::KEY);
            let built = ctx.instance(&path, &value, index, spread);
            let inst = match (built, fallback) {
                (Ok(inst), _) => {
                    if path.starts_with(rich::KEY) {
                        self.last_good.insert(inst.name.clone(), value);
                    }
                    Some(inst)
                }
                (Err(m), Some(old)) => {
                    let kept = ctx.instance(&path, &old, index, spread).ok();
                    reject(
                        &mut d,
                        path,
                        format!(
                            "{m}{}",
                            if kept.is_some() {
                                " (keeping its last good version)"
                            } else {
                                ""
                            }
                        ),
                    );
                    kept
                }
                (Err(m), None) => {
                    reject(&mut d, path, m);
                    None
                }
            };
            let Some(inst) = inst else { continue };
            let mut with = d.instances.clone();
            with.push(inst.clone());
            let clash = edgevip_config::check_instances(&with);
            if let Some(c) = clash.first() {
                reject(
                    &mut d,
                    format!("instance {:?}", inst.name),
                    format!("{}: {}", c.path, c.message),
                );
                continue;
            }
            d.instances.push(inst);
        }
        // Entries gone from the document lose their last good form too.
        let named: BTreeSet<String> = doc
            .instances
            .iter()
            .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        self.last_good.retain(|n, _| named.contains(n));
        d
    }
}

struct Ctx<'a> {
    s: &'a Settings,
    nodes: &'a [NodeInfo],
    me: &'a NodeInfo,
    interface: Option<&'a str>,
}

impl Ctx<'_> {
    /// One entry → one instance: fill what the cluster decides, then the file's validation.
    fn instance(
        &self,
        path: &str,
        v: &Value,
        index: usize,
        spread: bool,
    ) -> Result<Instance, String> {
        let Value::Object(given) = v else {
            return Err("is not a mapping".into());
        };
        let mut m: Map<String, Value> = given.clone();
        let has = |k: &str| given.contains_key(k);
        if !has("interface") {
            match self.interface {
                Some(i) => {
                    m.insert("interface".into(), i.into());
                }
                None => {
                    return Err(format!(
                        "no interface: none given and none holds node address {}",
                        self.me.addresses[0]
                    ));
                }
            }
        }
        if !has("advert_interval") {
            m.insert(
                "advert_interval".into(),
                format_duration(self.s.advert_interval).into(),
            );
        }
        if !has("preempt") {
            m.insert("preempt".into(), self.s.preempt.into());
        }
        if !has("priority") {
            let p = nodes::priority(self.nodes, &self.me.name, index, spread).unwrap_or(1);
            m.insert("priority".into(), p.into());
        }
        let auto_peers = !has("unicast_peers") && !has("unicast");
        let raw: edgevip_config::raw::Instance =
            serde_json::from_value(Value::Object(m)).map_err(|e| format!("{path}: {e}"))?;
        let mut inst = edgevip_config::validate_instance(path, raw).map_err(|e| {
            e.0.iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        if auto_peers {
            inst.unicast = self.s.unicast;
            if inst.unicast {
                inst.unicast_peers = self.peers(&inst);
            }
        }
        if !has("health_checks") {
            inst.health_checks = self.s.ingress_check.iter().cloned().collect();
        }
        Ok(inst)
    }

    /// The other edge nodes' addresses of the families the instance's VIPs use.
    fn peers(&self, inst: &Instance) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for v4 in [true, false] {
            if !inst.vips.iter().any(|v| v.addr.is_ipv4() == v4) {
                continue;
            }
            for n in nodes::ordered(self.nodes) {
                if n.name != self.me.name
                    && let Some(a) = n.address_of(v4)
                {
                    out.push(a);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
