//! From what the cluster says (the ConfigMap, the edge Nodes, this node) to the instances
//! this node runs. Pure: the controller calls it after every change, and the engine only
//! touches instances whose result differs, so an unrelated change moves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use edgevip_config::{Defaults, Instance, raw};

use crate::compat::{self, Method, ServiceRef};
use crate::eligibility::{Eligibility, IngressCheck};
use crate::nodes::{self, NodeInfo};
use crate::pools::{Labels, PoolDef};
use crate::services::{self, Plan, SvcInfo};
use crate::trust::{self, Fence, NodeLink, Trust};
use crate::{Reject, rich, spread};

/// Name of the instance that carries the compat entries' VIPs.
pub const COMPAT_INSTANCE: &str = "vips";

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
    /// The check of the local ingress: never, for instances that define none, or when the
    /// ingress shows on the host network.
    pub ingress_check: IngressCheck,
    /// Where a node must see ready endpoints to hold the compat VIPs.
    pub eligibility: Eligibility,
    /// LoadBalancer Services mode, when enabled.
    pub lb: Option<services::LbSettings>,
    /// Forward `NAT` / `PROXY` entries to their Service's endpoints.
    pub forwarding: bool,
    /// `--bgp`: `announce: bgp` entries are served, peers come from BGPPeer objects.
    pub bgp: Option<crate::bgp_peers::BgpSettings>,
    pub proxy_header: edgevip_forward::ProxyHeader,
    /// Which addresses may be VIPs, what the ConfigMap may set beyond them.
    pub trust: Trust,
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
    /// Instances carrying LoadBalancer VIPs → the Services whose VIPs they carry.
    pub lb_groups: BTreeMap<String, BTreeSet<String>>,
    /// This node writes Service status.
    pub writer: bool,
    /// What to forward (filled in by the controller from Services and EndpointSlices).
    pub forward: edgevip_forward::Spec,
    /// `--bgp`: this node's peers, from the BGPPeers that select it (`None`: none do).
    pub bgp: Option<edgevip_config::Bgp>,
}

impl Desired {
    /// `announce: bgp` VIPs that no peer of this node can be told about are still put on
    /// `lo` (so a peer added later announces them at once), and warned about.
    pub fn unannounced(&mut self, object: &str) {
        let mut out = Vec::new();
        for i in self.instances.iter().filter(|i| i.mode.is_bgp()) {
            let missing: Vec<String> = i
                .vips
                .iter()
                .filter(|v| {
                    self.bgp
                        .as_ref()
                        .is_none_or(|b| !crate::bgp_peers::has_peer_for(b, v.addr))
                })
                .map(|v| v.addr.to_string())
                .collect();
            if !missing.is_empty() {
                out.push(Reject {
                    object: object.to_string(),
                    field: format!("instance {:?}", i.name),
                    message: format!(
                        "announce: bgp, but no BGPPeer of that family selects this node: {} not announced",
                        missing.join(", ")
                    ),
                });
            }
        }
        self.warnings.extend(out);
    }

    fn reject(&mut self, object: &str, field: impl Into<String>, message: impl Into<String>) {
        self.rejects.push(Reject {
            object: object.into(),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// What LoadBalancer mode reads from the cluster.
#[derive(Debug, Clone, Copy)]
pub struct LbView<'a> {
    pub services: &'a [SvcInfo],
    /// The `--address-pool` pool first, then the VIPPools.
    pub pools: &'a [PoolDef],
    /// Namespace → its labels, for pools' `namespaceSelector`.
    pub namespaces: &'a BTreeMap<String, Labels>,
}

static NO_NAMESPACES: BTreeMap<String, Labels> = BTreeMap::new();

impl Default for LbView<'_> {
    fn default() -> Self {
        LbView {
            services: &[],
            pools: &[],
            namespaces: &NO_NAMESPACES,
        }
    }
}

/// Builds desired states, remembering each rich entry's last good form: an entry that an
/// edit breaks keeps running as it was instead of releasing its VIPs.
#[derive(Debug, Default)]
pub struct Builder {
    last_good: BTreeMap<String, raw::Instance>,
    last_doc: Option<rich::Doc>,
    /// Instances accepted by the last build: they win clashes with newer ones.
    serving: BTreeSet<String>,
}

/// Where a candidate comes from; on a fresh start, clashes go to the earlier kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum From {
    Compat,
    Rich,
    /// LoadBalancer Services: anyone who can create a Service makes these.
    Services,
}

/// One entry on its way to an instance.
struct Candidate {
    /// Where it comes from, e.g. `data` or `edgevip.yaml: instances[1]`.
    path: String,
    fields: Result<raw::Instance, String>,
    /// A rich entry's last good fields.
    fallback: Option<raw::Instance>,
    from: From,
    /// A generated instance's VIPs, each with the entry that asked for it: a VIP the
    /// instance cannot take is refused alone.
    vip_fields: Vec<(IpAddr, String)>,
    /// Priorities rotate by this instead of the position (LoadBalancer instances: their
    /// VRID, so masters take turns and a restart changes nothing).
    rotate: Option<usize>,
}

impl Candidate {
    /// The instance edgevip makes itself (compat entries, LoadBalancer VIPs).
    fn generated(
        path: &str,
        name: &str,
        vrid: u8,
        from: From,
        vip_fields: Vec<(IpAddr, String)>,
    ) -> Candidate {
        Candidate {
            path: path.into(),
            fields: Ok(generated_fields(
                name,
                vrid,
                vip_fields.iter().map(|(v, _)| *v),
            )),
            fallback: None,
            from,
            vip_fields,
            rotate: None,
        }
    }
}

fn generated_fields(name: &str, vrid: u8, vips: impl Iterator<Item = IpAddr>) -> raw::Instance {
    raw::Instance {
        name: Some(name.into()),
        vrid: Some(i64::from(vrid)),
        vips: vips.map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

impl Builder {
    pub fn build(
        &mut self,
        s: &Settings,
        nodes: &[NodeInfo],
        link: &NodeLink,
        source: Option<&Source>,
        lb: LbView,
    ) -> Desired {
        let mut d = Desired::default();
        let empty = Source {
            object: format!("Node {}", s.node_name),
            data: BTreeMap::new(),
        };
        let src = source.unwrap_or(&empty);
        let Some(me) = nodes.iter().find(|n| n.name == s.node_name) else {
            d.reject(
                &src.object,
                "node",
                format!(
                    "this node {:?} is not among the edge nodes (selector): serving nothing",
                    s.node_name
                ),
            );
            return d;
        };
        if me.addresses.is_empty() {
            d.reject(
                &src.object,
                "node",
                format!("node {:?} has no InternalIP address", me.name),
            );
            return d;
        }
        let ctx = Ctx::new(s, nodes, me, link);

        let mut candidates: Vec<Candidate> = compat_entries(s, &ctx.fence, src, &mut d)
            .into_iter()
            .collect();
        let doc = self.doc(src, &mut d);
        if let Some(settings) = &s.lb {
            d.lb = services::plan(lb.services, settings, lb.pools, lb.namespaces, &|ip| {
                ctx.fence.check_service(ip)
            });
            let taken = self.configmap_vrids(s, &doc);
            candidates.extend(lb_candidates(settings, &taken, &mut d));
        }
        // A last good form is found by name, so it is only for a name one entry uses: a
        // broken entry must not borrow a good namesake's fields, or the next build would
        // serve them at the broken entry's position (another priority) and refuse the good one.
        let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
        for n in doc.instances.iter().filter_map(|e| e.name.as_deref()) {
            *uses.entry(n).or_default() += 1;
        }
        for (i, e) in doc.instances.iter().enumerate() {
            candidates.push(Candidate {
                path: format!("{}: instances[{i}]", rich::KEY),
                fields: e.fields.clone(),
                fallback: e
                    .name
                    .as_deref()
                    .filter(|n| uses[n] == 1)
                    .and_then(|n| self.last_good.get(n).cloned()),
                from: From::Rich,
                vip_fields: Vec::new(),
                rotate: None,
            });
        }
        // The index (which rotates priorities) stays the position; the order of acceptance
        // puts what served before first, so a newer instance never displaces an older one.
        let mut order: Vec<(usize, Candidate)> = candidates.into_iter().enumerate().collect();
        let was_serving = |c: &Candidate| {
            c.fields
                .as_ref()
                .ok()
                .and_then(|f| f.name.as_ref())
                .is_some_and(|n| self.serving.contains(n))
        };
        order.sort_by_key(|(i, c)| (!was_serving(c), c.from, *i));
        let mut placed = BTreeMap::new();
        for (index, c) in order {
            self.accept(&ctx, c, index, doc.spread, &src.object, &mut d);
            if let Some(i) = d.instances.last() {
                placed.entry(i.name.clone()).or_insert(index);
            }
        }
        d.instances.sort_by_key(|i| placed.get(&i.name).copied());
        self.serving = d.instances.iter().map(|i| i.name.clone()).collect();
        unserved_services(&mut d);
        // Entries gone from the document lose their last good form too.
        let named: BTreeSet<&String> = doc
            .instances
            .iter()
            .filter_map(|e| e.name.as_ref())
            .collect();
        self.last_good.retain(|n, _| named.contains(n));
        d
    }

    /// VRIDs the ConfigMap's instances use (or used in their last good form): the
    /// LoadBalancer instances step around them.
    fn configmap_vrids(&self, s: &Settings, doc: &rich::Doc) -> BTreeSet<u8> {
        let of = |f: &raw::Instance| f.vrid.and_then(|v| u8::try_from(v).ok());
        let entries = doc.instances.iter().filter_map(|e| {
            let named = e.name.as_ref().and_then(|n| self.last_good.get(n));
            e.fields
                .as_ref()
                .ok()
                .and_then(of)
                .or_else(|| named.and_then(of))
        });
        std::iter::once(s.vrid).chain(entries).collect()
    }

    /// The rich document: a broken one keeps the last good document.
    fn doc(&mut self, src: &Source, d: &mut Desired) -> rich::Doc {
        match src.data.get(rich::KEY).map(|t| rich::parse(t)) {
            None => rich::Doc::default(),
            Some(Ok(doc)) => {
                self.last_doc = Some(doc.clone());
                doc
            }
            Some(Err(m)) => {
                let kept = self.last_doc.clone().unwrap_or_default();
                d.reject(
                    &src.object,
                    format!("data[{:?}]", rich::KEY),
                    format!(
                        "{m}; keeping the last good document ({} instances)",
                        kept.instances.len()
                    ),
                );
                kept
            }
        }
    }

    /// Validates one candidate (or its last good form) and adds it unless it clashes with
    /// those already accepted.
    fn accept(
        &mut self,
        ctx: &Ctx,
        c: Candidate,
        index: usize,
        spread: bool,
        object: &str,
        d: &mut Desired,
    ) {
        let rich = c.from == From::Rich;
        let spread = (spread && rich) || c.rotate.is_some();
        let c = ctx.isolate(c, index, object, d);
        let index = c.rotate.unwrap_or(index);
        let built = ctx.instance(&c.path, c.fields.clone(), index, spread, rich);
        let inst = match (built, c.fallback) {
            (Ok(inst), _) => {
                if let (true, Ok(fields)) = (rich, c.fields) {
                    self.last_good.insert(inst.name.clone(), fields);
                }
                inst
            }
            (Err(m), Some(old)) => {
                let kept = ctx.instance(&c.path, Ok(old), index, spread, rich).ok();
                let note = if kept.is_some() {
                    " (keeping its last good version)"
                } else {
                    ""
                };
                d.reject(object, c.path, format!("{m}{note}"));
                let Some(kept) = kept else { return };
                kept
            }
            (Err(m), None) => {
                d.reject(object, c.path, m);
                return;
            }
        };
        let mut with = d.instances.clone();
        with.push(inst.clone());
        if let Some(clash) = edgevip_config::check_instances(&with).first() {
            let flag = match c.from {
                From::Compat => " (VRID from --vrid)",
                From::Services => " (VRID from --lb-vrids)",
                From::Rich => "",
            };
            // Instances by name, not by their position in this check's list.
            let mut why = format!("{}: {}{flag}", clash.path, clash.message);
            for (k, o) in with.iter().enumerate().rev() {
                why = why.replace(
                    &format!("instances[{k}]"),
                    &format!("instance {:?}", o.name),
                );
            }
            d.reject(
                object,
                format!("instance {:?}", inst.name),
                format!("{why}; refused, the instance already serving keeps its VIPs"),
            );
            return;
        }
        d.instances.push(inst);
    }
}

/// The compat entries: one instance with all their VIPs; what cannot be forwarded for
/// their Services is warned about.
fn compat_entries(s: &Settings, fence: &Fence, src: &Source, d: &mut Desired) -> Option<Candidate> {
    let (mut entries, errors) = compat::parse(&src.data, &[rich::KEY]);
    for (key, m) in errors {
        d.reject(&src.object, format!("data[{key:?}]"), m);
    }
    entries.retain(|e| match fence.check(e.vip) {
        Ok(()) => true,
        Err(why) => {
            let key = src
                .data
                .keys()
                .find(|k| k.trim().parse() == Ok(e.vip))
                .cloned()
                .unwrap_or_else(|| e.vip.to_string());
            d.reject(
                &src.object,
                format!("data[{key:?}]"),
                format!("refused: {why}"),
            );
            false
        }
    });
    for e in &entries {
        let Some(svc) = &e.service else { continue };
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
            object: src.object.clone(),
            field: format!("data[\"{}\"]", e.vip),
            message: format!("{:?} for {}/{}: {why}", svc.method, svc.namespace, svc.name),
        });
    }
    if entries.is_empty() {
        return None;
    }
    let fields = entries
        .iter()
        .map(|e| (e.vip, format!("data[\"{}\"]", e.vip)))
        .collect();
    Some(Candidate::generated(
        "data",
        COMPAT_INSTANCE,
        s.vrid,
        From::Compat,
        fields,
    ))
}

/// One candidate per VRID carrying LoadBalancer VIPs (`crate::spread`), each VIP with the
/// Services it serves; `d.lb_groups` says which Services each instance carries.
fn lb_candidates(
    settings: &services::LbSettings,
    taken: &BTreeSet<u8>,
    d: &mut Desired,
) -> Vec<Candidate> {
    let mut by_vrid: BTreeMap<u8, BTreeMap<IpAddr, Vec<&str>>> = BTreeMap::new();
    for (key, vips) in &d.lb.serving {
        for vip in vips {
            if let Some(vrid) = spread::vrid_for(*vip, &settings.vrids, taken) {
                by_vrid
                    .entry(vrid)
                    .or_default()
                    .entry(*vip)
                    .or_default()
                    .push(key);
            }
        }
    }
    let mut out = Vec::new();
    for (vrid, vips) in by_vrid {
        let name = spread::instance_name(vrid);
        let keys = vips.values().flatten().map(|k| k.to_string()).collect();
        d.lb_groups.insert(name.clone(), keys);
        let fields = vips
            .into_iter()
            .map(|(vip, keys)| (vip, format!("Service {}", keys.join(", "))))
            .collect();
        let mut c = Candidate::generated("services", &name, vrid, From::Services, fields);
        c.rotate = Some(usize::from(vrid));
        // The rotated priorities are the spread: without preemption whichever node starts
        // an instance first keeps it, and a recovered node never gets its share back.
        if let Ok(f) = &mut c.fields {
            f.preempt = Some(true);
        }
        out.push(c);
    }
    out
}

/// LoadBalancer VIPs no accepted instance carries are taken from their Services: a Service
/// left with none gets a problem, one that keeps a family a note.
fn unserved_services(d: &mut Desired) {
    let served: BTreeSet<IpAddr> = d
        .instances
        .iter()
        .filter(|i| d.lb_groups.contains_key(&i.name))
        .flat_map(|i| i.vips.iter().map(|v| v.addr))
        .collect();
    let mut gone = Vec::new();
    for (key, vips) in d.lb.serving.iter_mut() {
        let (kept, lost): (Vec<IpAddr>, Vec<IpAddr>) =
            vips.iter().partition(|ip| served.contains(ip));
        if !lost.is_empty() {
            *vips = kept;
            gone.push((key.clone(), lost, vips.is_empty()));
        }
    }
    for (key, lost, nothing_left) in gone {
        let why = d
            .rejects
            .iter()
            .rev()
            .find(|r| {
                r.field.contains(&key)
                    || d.lb_groups
                        .iter()
                        .any(|(name, keys)| keys.contains(&key) && r.field.contains(name))
            })
            .map(|r| r.message.clone())
            .unwrap_or_else(|| {
                "no VRID of --lb-vrids is left by the ConfigMap's instances".to_string()
            });
        let lost: Vec<String> = lost.iter().map(ToString::to_string).collect();
        let line = format!("{} not served: {why}", lost.join(", "));
        if nothing_left {
            d.lb.serving.remove(&key);
            d.lb.problems.insert(key, line);
        } else {
            d.lb.notes.insert(key, line);
        }
    }
}

/// What the cluster decides for every entry of this build.
struct Ctx<'a> {
    nodes: &'a [NodeInfo],
    me: &'a NodeInfo,
    /// Everything but the priority, which depends on the entry's position.
    defaults: Defaults,
    fence: Fence,
    rights: trust::Rights,
    /// `--bgp`: `announce: bgp` entries are served.
    bgp: bool,
}

impl<'a> Ctx<'a> {
    fn new(s: &Settings, nodes: &'a [NodeInfo], me: &'a NodeInfo, link: &NodeLink) -> Ctx<'a> {
        let interface = s.interface.as_deref().or(link.interface.as_deref());
        let node_addrs: Vec<IpAddr> = nodes.iter().flat_map(|n| n.addresses.clone()).collect();
        let pod_cidrs: Vec<trust::Cidr> = nodes.iter().flat_map(|n| n.pod_cidrs.clone()).collect();
        // The other edge nodes' addresses, IPv4 first; each instance keeps those of the
        // families its VIPs use.
        let peers = [true, false]
            .into_iter()
            .flat_map(|v4| {
                nodes::ordered(nodes)
                    .into_iter()
                    .filter(|n| n.name != me.name)
                    .filter_map(move |n| n.address_of(v4))
            })
            .collect();
        Ctx {
            nodes,
            me,
            fence: Fence::new(&s.trust, link, &node_addrs, &pod_cidrs),
            rights: s.trust.configmap,
            bgp: s.bgp.is_some(),
            defaults: Defaults {
                interface: interface.map(str::to_string),
                priority: 1,
                advert_interval: s.advert_interval,
                preempt: s.preempt,
                unicast_peers: s.unicast.then_some(peers),
                health_checks: s.ingress_check.default_checks(),
                // Peers are listed by InternalIP: our IPv4 adverts come from ours, whatever
                // address comes first on the interface (or whichever NIC --interface names).
                unicast_src: s.unicast.then(|| me.address_of(true)).flatten(),
            },
        }
    }

    /// One entry → one instance: the file's validation, with what the cluster decides as
    /// the defaults.
    fn instance(
        &self,
        path: &str,
        fields: Result<raw::Instance, String>,
        index: usize,
        spread: bool,
        from_configmap: bool,
    ) -> Result<Instance, String> {
        let raw = fields.map_err(|e| format!("{path}: {e}"))?;
        let bgp = matches!(&raw.announce, Some(raw::AnnounceField::Mode(m)) if m == "bgp");
        if bgp && !self.bgp {
            // Peers and credentials come from BGPPeer objects, never this ConfigMap.
            return Err(format!(
                "{path}.announce: \"bgp\" needs edgevip started with --bgp (peers come from BGPPeer objects)"
            ));
        }
        if from_configmap {
            let refused = trust::refused_fields(path, &raw, self.rights, &self.fence);
            if !refused.is_empty() {
                return Err(refused.join("; "));
            }
        }
        if !bgp && raw.interface.is_none() && self.defaults.interface.is_none() {
            return Err(format!(
                "no interface: none given and none holds node address {}",
                self.me.addresses[0]
            ));
        }
        let defaults = Defaults {
            priority: nodes::priority(self.nodes, &self.me.name, index, spread).unwrap_or(1),
            ..self.defaults.clone()
        };
        let own_peers = raw.unicast_peers.is_some();
        let inst = Instance::from_raw(path, raw, &defaults).map_err(|e| {
            e.0.iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        self.peers_reachable(path, own_peers, &inst)?;
        if from_configmap {
            // Generated instances' VIPs were checked entry by entry (compat) or by the plan
            // (Services, whose range is the pool).
            let refused: Vec<String> = inst
                .vips
                .iter()
                .enumerate()
                .filter_map(|(k, v)| {
                    let why = self.fence.check(v.addr).err()?;
                    Some(format!("{path}.vips[{k}]: refused: {why}"))
                })
                .collect();
            if !refused.is_empty() {
                return Err(refused.join("; "));
            }
        }
        Ok(inst)
    }

    /// Unicast adverts of a family go to the edge nodes' InternalIPs of that family, so a
    /// node listing none of a family never hears that family's adverts and would hold its
    /// VIPs beside the real master. It takes no part: its VIPs of that family are refused
    /// here, and the nodes that list one elect among themselves (multicast, or peers the
    /// ConfigMap names, are not affected).
    fn peers_reachable(&self, path: &str, own_peers: bool, inst: &Instance) -> Result<(), String> {
        if !inst.unicast || own_peers || self.nodes.len() < 2 {
            return Ok(());
        }
        for v4 in [true, false] {
            if self.me.address_of(v4).is_none() && inst.vips.iter().any(|v| v.addr.is_ipv4() == v4)
            {
                let fam = if v4 { "IPv4" } else { "IPv6" };
                return Err(format!(
                    "{path}: node {} lists no {fam} InternalIP, so it cannot take part in the \
                     unicast {fam} election (it would hold the {fam} VIPs beside the master); \
                     the nodes that list one serve them",
                    self.me.name
                ));
            }
        }
        Ok(())
    }

    /// A generated candidate whose instance cannot be built loses the VIPs that cannot be
    /// built alone (each refused with its entry), so one bad entry never takes the others.
    fn isolate(&self, mut c: Candidate, index: usize, object: &str, d: &mut Desired) -> Candidate {
        let Ok(fields) = &c.fields else { return c };
        if c.vip_fields.len() < 2
            || self
                .instance(&c.path, Ok(fields.clone()), index, false, false)
                .is_ok()
        {
            return c;
        }
        let name = fields.name.clone().unwrap_or_default();
        let vrid = fields.vrid.unwrap_or(1).clamp(1, 255) as u8;
        c.vip_fields.retain(|(vip, field)| {
            let alone = generated_fields(&name, vrid, std::iter::once(*vip));
            match self.instance(&c.path, Ok(alone), index, false, false) {
                Ok(_) => true,
                Err(m) => {
                    d.reject(object, field.clone(), format!("refused alone: {m}"));
                    false
                }
            }
        });
        c.fields = Ok(raw::Instance {
            preempt: fields.preempt,
            ..generated_fields(&name, vrid, c.vip_fields.iter().map(|(v, _)| *v))
        });
        c
    }
}

#[cfg(test)]
mod tests;
