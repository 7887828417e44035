//! What the controller knows of the cluster, and the desired state it gives: the caches,
//! the ConfigMap held through its grace period, status writes in flight (Services' and
//! VIPPools'). No I/O: `run` feeds it watch events and timer ticks and publishes what
//! `rebuild` returns, so tests drive it directly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
use tokio::time::Instant;

use super::cache::Cache;
use super::{KubeStatus, Options, PoolSummary};
use crate::Reject;
use crate::bgp_peers::{self, PeerDef};
use crate::desired::{Builder, Desired, LbView, Settings, Source};
use crate::eligibility;
use crate::forwarding::{self, Slice, SvcPorts};
use crate::nodes::NodeInfo;
use crate::pools::{self, Labels, PoolDef, PoolStatus, PoolUse};
use crate::services::SvcInfo;
use crate::trust::NodeLink;

/// A failed status write is sent again after this long.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);

/// One watch event, by kind. Not boxed: each is moved once, from its stream to `apply`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Change {
    Node(Event<Node>),
    Map(Event<ConfigMap>),
    Service(Event<Service>),
    Slice(Event<EndpointSlice>),
    Pool(Event<DynamicObject>),
    Namespace(Event<Namespace>),
    Peer(Event<DynamicObject>),
    Secret(Event<Secret>),
}

/// A BGPPeer: its parsed form, or why it is refused.
#[derive(Debug, Clone, PartialEq)]
struct PeerObject {
    uid: Option<String>,
    def: Result<PeerDef, Vec<Reject>>,
}

impl PeerObject {
    fn from_object(o: &DynamicObject) -> Option<PeerObject> {
        Some(PeerObject {
            uid: o.metadata.uid.clone(),
            def: bgp_peers::from_object(&as_json(o)),
        })
    }
}

/// A custom object as the readers (`pools::from_object`, `bgp_peers::from_object`) take
/// it: `data` holds all but the metadata, of which they read the name.
fn as_json(o: &DynamicObject) -> serde_json::Value {
    let mut v = o.data.clone();
    v["metadata"] = serde_json::json!({"name": o.metadata.name});
    v
}

/// Every problem of the refused objects among `defs`.
fn refused<'a, T: 'a>(defs: impl Iterator<Item = &'a Result<T, Vec<Reject>>>) -> Vec<Reject> {
    defs.filter_map(|d| d.as_ref().err())
        .flatten()
        .cloned()
        .collect()
}

/// The name in a namespaced cache key (`namespace/name`).
fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// A Secret's data (only Secrets of edgevip's namespace are watched, for BGP passwords).
type SecretData = BTreeMap<String, Vec<u8>>;

fn secret_data(s: &Secret) -> Option<SecretData> {
    Some(
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
    )
}

/// What is kept of a VIPPool: its parsed form (or why it is refused), and what its status
/// says (to write only what differs).
#[derive(Debug, Clone, PartialEq)]
struct PoolObject {
    uid: Option<String>,
    def: Result<PoolDef, Vec<Reject>>,
    status: serde_json::Value,
}

impl PoolObject {
    fn from_object(o: &DynamicObject) -> Option<PoolObject> {
        Some(PoolObject {
            uid: o.metadata.uid.clone(),
            def: pools::from_object(&as_json(o)),
            status: o.data.get("status").cloned().unwrap_or_default(),
        })
    }
}

pub struct World {
    settings: Settings,
    /// `ns/name` of the ConfigMap, and `ConfigMap ns/name` for messages.
    configmap: String,
    object: String,
    grace: Duration,
    builder: Builder,
    nodes: Cache<NodeInfo>,
    map: Cache<Source>,
    held: Held,
    /// LoadBalancer Services only.
    load_balancers: Cache<SvcInfo>,
    /// Ports of every Service and the EndpointSlices of every Service, so a ConfigMap edit
    /// naming another Service needs no new watch.
    ports: Cache<SvcPorts>,
    slices: Cache<Slice>,
    /// Services the ConfigMap forwards to: only their ports and slices matter.
    referenced: BTreeSet<String>,
    /// VIPPools by name (LoadBalancer mode), and the labels of every namespace (for the
    /// pools' namespace selectors).
    pools: Cache<PoolObject>,
    namespaces: Cache<Labels>,
    /// The VIPPool CRD is not installed (told once per absence).
    pools_absent: bool,
    /// `--bgp`: BGPPeers by name, and the Secrets of edgevip's namespace (passwords).
    peers: Cache<PeerObject>,
    secrets: Cache<SecretData>,
    peers_absent: bool,
    namespace: String,
    /// BGPPeers this node cannot use (its last rebuild).
    bgp_rejects: Vec<Reject>,
    /// VIPPool status writes sent and not yet seen back, by pool name.
    pools_in_flight: BTreeMap<String, PoolStatus>,
    pools_failed: Vec<String>,
    /// Status writes sent and not yet seen back: `ns/name` → VIPs (`None`: cleared).
    in_flight: BTreeMap<String, Option<Vec<IpAddr>>>,
    /// Failed writes, released from `in_flight` (so written again) at `retry_at`.
    failed: Vec<String>,
    retry_at: Option<Instant>,
    /// This pod holds the allocator Lease: it writes Service status.
    allocator: bool,
    /// The Lease, `ns/name` (LoadBalancer mode).
    lease: Option<String>,
    pub watch_errors: u64,
    pub rebuilds: u64,
}

impl World {
    pub fn new(opts: &Options) -> World {
        let s = &opts.settings;
        let services = s.lb.is_some() || s.forwarding;
        World {
            settings: s.clone(),
            configmap: opts.configmap(),
            object: format!("ConfigMap {}", opts.configmap()),
            grace: opts.release_grace,
            builder: Builder::default(),
            nodes: Cache::new(),
            map: Cache::new(),
            held: Held::default(),
            load_balancers: watched_if(services),
            ports: watched_if(services),
            // Forwarding needs endpoints, and so do `externalTrafficPolicy: Local` VIPs.
            slices: watched_if(s.forwarding || s.lb.is_some()),
            referenced: BTreeSet::new(),
            pools: watched_if(s.lb.is_some()),
            namespaces: watched_if(s.lb.is_some()),
            pools_absent: false,
            peers: watched_if(s.bgp.is_some()),
            secrets: watched_if(s.bgp.is_some()),
            peers_absent: false,
            bgp_rejects: Vec::new(),
            namespace: opts.configmap_namespace.clone(),
            pools_in_flight: BTreeMap::new(),
            pools_failed: Vec::new(),
            in_flight: BTreeMap::new(),
            failed: Vec::new(),
            retry_at: None,
            allocator: false,
            lease: opts
                .lease
                .as_ref()
                .map(|l| format!("{}/{}", l.namespace, l.name)),
            watch_errors: 0,
            rebuilds: 0,
        }
    }

    /// This pod tells the cluster about the ConfigMap and Services (their Events come from
    /// one pod, not from every edge node): the allocator Lease's holder in LoadBalancer
    /// mode, else the first ready edge node.
    pub fn speaks_for_cluster(&self) -> bool {
        if self.lease.is_some() {
            return self.allocator;
        }
        let nodes: Vec<NodeInfo> = self.nodes.items().values().cloned().collect();
        crate::nodes::first_ready(&nodes).is_some_and(|n| n.name == self.settings.node_name)
    }

    /// This pod gained or lost the allocator Lease; true when that changes anything.
    pub fn set_allocator(&mut self, on: bool) -> bool {
        if !on {
            // Writes a former holder sent may never show: the next term sends them again.
            self.in_flight.clear();
            self.pools_in_flight.clear();
        }
        std::mem::replace(&mut self.allocator, on) != on && self.settings.lb.is_some()
    }

    /// Applies a watch event; true when the desired state may have moved.
    pub fn apply(&mut self, change: &Change, now: Instant) -> bool {
        match change {
            Change::Node(e) => self
                .nodes
                .apply(e, |n| Some(NodeInfo::from_node(n)), always),
            Change::Map(e) => {
                let object = &self.object;
                let source = |m: &ConfigMap| {
                    Some(Source {
                        object: object.clone(),
                        data: m.data.clone().unwrap_or_default(),
                    })
                };
                let moved = self.map.apply(e, source, always);
                if moved {
                    let now_there = self.map.items().values().next().cloned();
                    self.held.observe(now_there, now, &self.object);
                }
                moved
            }
            Change::Service(e) => {
                // Services that are not LoadBalancers change often (Endpoints-driven
                // controllers touch them): only a referenced one's ports matter.
                let lb = |s: &Service| Some(SvcInfo::from_service(s)).filter(|i| i.load_balancer);
                let lb_moved = self.load_balancers.apply(e, lb, always);
                let refs = &self.referenced;
                let ports_moved = self.ports.apply(
                    e,
                    |s| Some(SvcPorts::from_service(s)),
                    |key, _| refs.contains(key),
                );
                lb_moved || ports_moved
            }
            Change::Slice(e) => {
                let refs = &self.referenced;
                self.slices
                    .apply(e, Slice::from_slice, |_, s| refs.contains(&s.service))
            }
            Change::Pool(e) => {
                // Every (re)list starts with Init, also the retries that then find the CRD
                // still missing: only what follows a successful list says it is installed.
                if !matches!(e, Event::Init) && std::mem::take(&mut self.pools_absent) {
                    tracing::info!("VIPPool CRD installed: VIPPools are read");
                }
                self.pools.apply(e, PoolObject::from_object, always)
            }
            Change::Peer(e) => {
                if !matches!(e, Event::Init) && std::mem::take(&mut self.peers_absent) {
                    tracing::info!("BGPPeer CRD installed: BGPPeers are read");
                }
                self.peers.apply(e, PeerObject::from_object, always)
            }
            Change::Secret(e) => {
                // Only Secrets a BGPPeer names matter; others change without a rebuild.
                let named: BTreeSet<String> = self
                    .peers
                    .items()
                    .values()
                    .filter_map(|p| p.def.as_ref().ok()?.password.as_ref())
                    .map(|r| r.name.clone())
                    .collect();
                self.secrets
                    .apply(e, secret_data, |key, _| named.contains(name_of(key)))
            }
            Change::Namespace(e) => self.namespaces.apply(
                e,
                |n| Some(n.metadata.labels.clone().unwrap_or_default()),
                always,
            ),
        }
    }

    /// Listing VIPPools said 404: the CRD is not installed, so there are none (only
    /// `--address-pool`), and nothing waits for them. The watch keeps retrying, so a CRD
    /// installed later is read. True when that moved anything.
    pub fn pools_missing(&mut self) -> bool {
        if !std::mem::replace(&mut self.pools_absent, true) {
            tracing::warn!("VIPPool CRD not installed: only --address-pool is used");
        }
        self.pools.absent()
    }

    /// Listing BGPPeers said 404 (CRD not installed): no peers, as for VIPPools.
    pub fn peers_missing(&mut self) -> bool {
        if !std::mem::replace(&mut self.peers_absent, true) {
            tracing::warn!("BGPPeer CRD not installed: announce: bgp VIPs have no peers");
        }
        self.peers.absent()
    }

    /// Refused BGPPeers (every problem of each), and those valid ones this node cannot
    /// use (its last rebuild).
    pub fn peer_problems(&self) -> (Vec<Reject>, Vec<Reject>) {
        let all = refused(self.peers.items().values().map(|p| &p.def));
        (all, self.bgp_rejects.clone())
    }

    /// The uid of a cached BGPPeer, for its Events.
    pub fn peer_uid(&self, name: &str) -> Option<String> {
        self.peers.items().get(name)?.uid.clone()
    }

    /// This node's `bgp:` section (`None` without `--bgp` or without a peer selecting it),
    /// and the peers it cannot use.
    fn bgp_section(&self, me: Option<&NodeInfo>) -> (Option<edgevip_config::Bgp>, Vec<Reject>) {
        let (Some(s), Some(me)) = (&self.settings.bgp, me) else {
            return (None, Vec::new());
        };
        let peers: Vec<&PeerDef> = self
            .peers
            .items()
            .values()
            .filter_map(|p| p.def.as_ref().ok())
            .collect();
        let secrets: BTreeMap<String, SecretData> = self
            .secrets
            .items()
            .iter()
            .map(|(k, v)| (name_of(k).to_string(), v.clone()))
            .collect();
        let ipv4 = me.address_of(true).and_then(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        });
        let view = bgp_peers::NodeView {
            labels: &me.labels,
            ipv4,
        };
        bgp_peers::for_node(&peers, &view, &secrets, &self.namespace, s)
    }

    /// The pools in force: `--address-pool` first (when it has addresses), then the valid
    /// VIPPools by name.
    pub fn pool_defs(&self) -> Vec<PoolDef> {
        let flag = self
            .settings
            .lb
            .as_ref()
            .map(|lb| PoolDef::from_flag(lb.pool.clone()))
            .filter(|p| !p.ranges.0.is_empty());
        flag.into_iter()
            .chain(
                self.pools
                    .items()
                    .values()
                    .filter_map(|p| p.def.as_ref().ok().cloned()),
            )
            .collect()
    }

    /// Refused VIPPools (every problem of each), and pools that share addresses.
    pub fn pool_problems(&self) -> (Vec<Reject>, Vec<Reject>) {
        let all = refused(self.pools.items().values().map(|p| &p.def));
        (all, pools::overlaps(&self.pool_defs()))
    }

    /// The uid of a cached VIPPool (Events name it, so `kubectl describe` finds them).
    pub fn pool_uid(&self, name: &str) -> Option<String> {
        self.pools.items().get(name)?.uid.clone()
    }

    /// VIPPool status writes to send now (the allocator only): a pool whose status differs
    /// from what `uses` (by pool name) and its validity say, once until the watch shows it.
    pub fn pool_status_due(
        &mut self,
        uses: &BTreeMap<String, PoolUse>,
    ) -> Vec<(String, serde_json::Value)> {
        if !(self.allocator && self.settings.lb.is_some()) {
            return Vec::new();
        }
        let mut want = BTreeMap::new();
        for (name, p) in self.pools.items() {
            let computed = match &p.def {
                Ok(def) => PoolStatus::valid(&uses.get(name).copied().unwrap_or(PoolUse {
                    allocated: 0,
                    size: pools::size(&def.ranges),
                })),
                Err(rejects) => PoolStatus::invalid(rejects),
            };
            if computed != PoolStatus::observed(&p.status) {
                want.insert(name.clone(), computed);
            }
        }
        self.pools_in_flight.retain(|k, s| want.get(k) == Some(s));
        let now = format!("{:.0}", k8s_openapi::jiff::Timestamp::now());
        let mut due = Vec::new();
        for (name, s) in want {
            if self.pools_in_flight.get(&name) != Some(&s) {
                let existing = &self.pools.items()[&name].status;
                due.push((name.clone(), s.to_json(existing, &now)));
                self.pools_in_flight.insert(name, s);
            }
        }
        due
    }

    /// A VIPPool status write failed: sent again after `RETRY_AFTER`, as a Service's.
    pub fn pool_write_failed(&mut self, name: String, now: Instant) {
        self.pools_failed.push(name);
        self.retry_at.get_or_insert(now + RETRY_AFTER);
    }

    /// Every watch has listed once: the desired state can be trusted.
    pub fn synced(&self) -> bool {
        self.nodes.synced()
            && self.map.synced()
            && self.load_balancers.synced()
            && self.ports.synced()
            && self.slices.synced()
            && self.pools.synced()
            && self.namespaces.synced()
            && self.peers.synced()
            && self.secrets.synced()
    }

    /// When `on_timer` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let release = self.held.gone_since.map(|t| t + self.grace);
        release.into_iter().chain(self.retry_at).min()
    }

    /// Ends a grace period, releases failed writes for retry; true when anything moved.
    pub fn on_timer(&mut self, now: Instant) -> bool {
        let mut moved = false;
        if self.held.gone_since.is_some_and(|t| t + self.grace <= now) {
            tracing::warn!(configmap = %self.object, grace = ?self.grace, "ConfigMap still gone after the grace period: releasing its VIPs");
            self.held = Held::default();
            moved = true;
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            for key in self.failed.drain(..) {
                self.in_flight.remove(&key);
            }
            for name in self.pools_failed.drain(..) {
                self.pools_in_flight.remove(&name);
            }
            self.retry_at = None;
            moved = true;
        }
        moved
    }

    /// A status write failed: it is sent again after `RETRY_AFTER`, and not before.
    pub fn write_failed(&mut self, key: String, now: Instant) {
        self.failed.push(key);
        self.retry_at.get_or_insert(now + RETRY_AFTER);
    }

    /// This node's addresses, whose interface the caller resolves.
    pub fn my_addresses(&self) -> Vec<IpAddr> {
        self.nodes
            .items()
            .get(&self.settings.node_name)
            .map(|n| n.addresses.clone())
            .unwrap_or_default()
    }

    /// The desired state from what is cached, `link` holding the node address.
    pub fn rebuild(&mut self, link: &NodeLink) -> Desired {
        let nodes: Vec<NodeInfo> = self.nodes.items().values().cloned().collect();
        let services: Vec<SvcInfo> = self
            .load_balancers
            .items()
            .values()
            .map(|s| SvcInfo {
                pending: self
                    .in_flight
                    .get(&s.key())
                    .cloned()
                    .flatten()
                    .unwrap_or_default(),
                ..s.clone()
            })
            .collect();
        let pools = self.pool_defs();
        let lb = LbView {
            services: &services,
            pools: &pools,
            namespaces: self.namespaces.items(),
        };
        let mut d = self
            .builder
            .build(&self.settings, &nodes, link, self.held.source.as_ref(), lb);
        d.writer = self.allocator && self.settings.lb.is_some();
        let (bgp, peer_rejects) =
            self.bgp_section(nodes.iter().find(|n| n.name == self.settings.node_name));
        self.bgp_rejects = peer_rejects;
        d.bgp = bgp;
        d.unannounced(&self.object);
        if self.settings.forwarding {
            let (spec, problems) = forwarding::spec(
                &d.services,
                self.ports.items(),
                self.slices.items(),
                self.settings.proxy_header,
            );
            d.forward = spec;
            eligibility::apply(
                &mut d,
                self.settings.eligibility,
                &self.settings.ingress_check,
                self.slices.items(),
                &nodes,
                &self.settings.node_name,
            );
            for (vip, why) in problems {
                d.warnings.push(Reject {
                    object: self.object.clone(),
                    field: format!("data[\"{vip}\"]"),
                    message: format!("{why}: nothing is forwarded for it yet"),
                });
            }
        }
        eligibility::local_endpoints(
            &mut d,
            self.slices.items(),
            &nodes,
            &self.settings.node_name,
        );
        self.referenced = d
            .services
            .iter()
            .map(|(_, r)| format!("{}/{}", r.namespace, r.name))
            .chain(d.lb.local.iter().cloned())
            .collect();
        self.rebuilds += 1;
        d
    }

    /// The status writes to send now (the writer only): one per Service and VIP (or clear,
    /// `None`) until the watch shows it, so a slow API server is not flooded.
    pub fn writes_due(&mut self, d: &Desired) -> Vec<(String, Option<Vec<IpAddr>>)> {
        if !d.writer {
            return Vec::new();
        }
        let want: BTreeMap<&String, Option<Vec<IpAddr>>> =
            d.lb.writes
                .iter()
                .map(|(k, ips)| (k, Some(ips.clone())))
                .chain(d.lb.clears.iter().map(|k| (k, None)))
                .collect();
        self.in_flight.retain(|k, ips| want.get(k) == Some(ips));
        let mut due = Vec::new();
        for (key, ips) in want {
            if self.in_flight.get(key) != Some(&ips) {
                self.in_flight.insert(key.clone(), ips.clone());
                due.push((key.clone(), ips));
            }
        }
        due
    }

    /// What `/status` shows after a rebuild that took `took`.
    /// `uses`: each pool's use by `d` (`pools::usage`), which the caller also writes.
    pub fn status(
        &self,
        d: &Desired,
        link: &NodeLink,
        took: Duration,
        uses: &BTreeMap<String, PoolUse>,
    ) -> KubeStatus {
        let (refused, overlapping) = self.pool_problems();
        let (peers_refused, peers_unusable) = self.peer_problems();
        let pools = self.pool_defs();
        KubeStatus {
            bgp_peers: d
                .bgp
                .iter()
                .flat_map(|b| &b.peers)
                .map(|p| format!("{} AS {}", p.address, p.asn))
                .collect(),
            bgppeer_crd_missing: self.peers_absent,
            synced: true,
            configmap: self.configmap.clone(),
            configmap_present: self.held.source.is_some() && self.held.gone_since.is_none(),
            release_pending: self.held.gone_since.is_some(),
            edge_nodes: self.nodes.items().keys().cloned().collect(),
            interface: self.settings.interface.clone().or(link.interface.clone()),
            instances: d.instances.iter().map(|i| i.name.clone()).collect(),
            rejected: d
                .rejects
                .iter()
                .cloned()
                .chain(refused)
                .chain(peers_refused)
                .chain(peers_unusable)
                .collect(),
            warnings: d.warnings.iter().cloned().chain(overlapping).collect(),
            pools: pools.iter().map(|p| PoolSummary::of(p, uses)).collect(),
            vippool_crd_missing: self.pools_absent,
            load_balancers: d
                .lb
                .serving
                .iter()
                .filter_map(|(k, ips)| Some((k.clone(), *ips.first()?)))
                .collect(),
            load_balancer_vips: d.lb.serving.clone(),
            load_balancer_problems: d.lb.problems.clone(),
            load_balancer_notes: d.lb.notes.clone(),
            status_writer: d.writer,
            allocator_lease: self.lease.clone(),
            forwarded: forwarded(&d.forward),
            last_rebuild_us: took.as_micros() as u64,
            rebuilds: self.rebuilds,
            watch_errors: self.watch_errors,
        }
    }
}

/// A cache, or (the feature off, no watch) one that is synced and empty.
fn watched_if<V: PartialEq>(on: bool) -> Cache<V> {
    if on { Cache::new() } else { Cache::unwatched() }
}

/// Every change of this kind matters.
fn always<V>(_: &str, _: &V) -> bool {
    true
}

/// `VIP:port/proto (nat|proxy) -> N endpoints`, one line per forwarded port.
fn forwarded(spec: &edgevip_forward::Spec) -> Vec<String> {
    let nat = spec.nat.iter().map(|n| {
        format!(
            "{} {}/{} nat -> {} endpoints",
            SocketAddr::new(n.vip, n.port),
            n.proto.as_str(),
            n.port,
            n.backends.len()
        )
    });
    let proxy = spec.proxy.iter().map(|p| {
        format!(
            "{} tcp proxy -> {} endpoints",
            SocketAddr::new(p.vip, p.port),
            p.backends.len()
        )
    });
    nat.chain(proxy).collect()
}

/// The ConfigMap in force: a deleted one stays for the grace period, so a delete and
/// re-create (or a brief wrong answer) does not drop traffic.
#[derive(Debug, Default)]
struct Held {
    source: Option<Source>,
    /// When it disappeared.
    gone_since: Option<Instant>,
}

impl Held {
    fn observe(&mut self, now_there: Option<Source>, now: Instant, object: &str) {
        match now_there {
            Some(m) => {
                if self.gone_since.take().is_some() {
                    tracing::info!(configmap = %object, "ConfigMap is back within the grace period");
                }
                self.source = Some(m);
            }
            None if self.source.is_some() && self.gone_since.is_none() => {
                tracing::warn!(configmap = %object, "ConfigMap deleted: its VIPs stay for the grace period");
                self.gone_since = Some(now);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
