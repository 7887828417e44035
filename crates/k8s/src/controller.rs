//! Follows the cluster with watches (no polling) and publishes each new desired state.
//! The API server going away changes nothing: the last state stays, watches reconnect with
//! backoff. A deleted ConfigMap releases its VIPs only after a grace period, so a delete and
//! re-create (or a brief wrong answer) does not drop traffic.
//!
//! ```text
//!  watches (Node, ConfigMap, Service, EndpointSlice,  ─┐
//!           VIPPool, Namespace)                         │
//!  timer (grace end, status-write retry) ──────────────┼─> run ─> World::apply / on_timer
//!  failed status writes (Service, VIPPool) ────────────┘             │ moved, all synced
//!                          resolver (node address → interface) ─> World::rebuild
//!                                                                    │ Desired
//!   Told::news, Told::pool_news → Events · World::writes_due → Service status writes ·
//!   World::pool_status_due → VIPPool status writes · World::status → status watch ·
//!   the Desired → desired watch (only when its instances or forwarding changed)
//! ```
//! `run` only wires; `World` (caches, grace, writes in flight) and `Told` are pure.
//!
//! VIPPools are optional: while their CRD is not installed (listing them is a 404) the
//! pool cache counts as synced and empty, and the watch keeps retrying with its backoff
//! (at most 30 s apart), so a CRD installed later is read without a restart.

mod backoff;
mod cache;
mod notices;
mod world;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::Reject;
use crate::desired::{Desired, Settings};
use crate::events::{Events, Kind};
use crate::trust::NodeLink;
use notices::{Notice, Regarding, Told};
use world::{Change, World};

/// Finds the interface given (`--interface`) or else the one that holds one of the node's
/// addresses, with its addresses (netlink, in the daemon): where VIPs go, and the on-link
/// subnets they may come from by default.
pub type Resolver = Arc<
    dyn Fn(Vec<IpAddr>, Option<String>) -> Pin<Box<dyn Future<Output = NodeLink> + Send>>
        + Send
        + Sync,
>;

#[derive(Clone)]
pub struct Options {
    pub settings: Settings,
    pub configmap_namespace: String,
    pub configmap_name: String,
    /// Label selector of the edge nodes, e.g. `edgenode=true`.
    pub node_selector: String,
    pub release_grace: Duration,
    /// LoadBalancer mode: the Lease whose holder writes Service status.
    pub lease: Option<crate::lease::LeaseOptions>,
}

impl Options {
    /// `ns/name` of the ConfigMap.
    pub fn configmap(&self) -> String {
        format!("{}/{}", self.configmap_namespace, self.configmap_name)
    }
}

/// What `/status` shows of the Kubernetes side.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KubeStatus {
    /// Both caches listed at least once: readiness.
    pub synced: bool,
    pub configmap: String,
    pub configmap_present: bool,
    /// Set while a deleted ConfigMap's VIPs wait out the grace period.
    pub release_pending: bool,
    pub edge_nodes: Vec<String>,
    pub interface: Option<String>,
    pub instances: Vec<String>,
    pub rejected: Vec<Reject>,
    pub warnings: Vec<Reject>,
    /// LoadBalancer Services: `ns/name` → VIP served (the primary family's), and those
    /// without one (why).
    pub load_balancers: BTreeMap<String, IpAddr>,
    pub load_balancer_problems: BTreeMap<String, String>,
    /// `ns/name` → every VIP served, primary family first (dual-stack Services have two).
    pub load_balancer_vips: BTreeMap<String, Vec<IpAddr>>,
    /// `ns/name` → what its owner should know although it is served.
    pub load_balancer_notes: BTreeMap<String, String>,
    /// LoadBalancer mode: the pools in force (`--address-pool`, then valid VIPPools).
    pub pools: Vec<PoolSummary>,
    /// Listing VIPPools says their CRD is not installed.
    pub vippool_crd_missing: bool,
    /// `--bgp`: the peers this node's FRR is given (`address AS n`), from the BGPPeers
    /// that select it; their sessions are in the daemon's own `bgp` section.
    pub bgp_peers: Vec<String>,
    /// `--bgp` and listing BGPPeers says their CRD is not installed.
    pub bgppeer_crd_missing: bool,
    /// This node records allocations in Service status (holds the allocator Lease).
    pub status_writer: bool,
    /// LoadBalancer mode: the allocator Lease, `ns/name`.
    pub allocator_lease: Option<String>,
    /// Forwarding: `VIP:port/proto (nat|proxy) -> N endpoints`.
    pub forwarded: Vec<String>,
    /// Time the last rebuild of the desired state took, in microseconds.
    pub last_rebuild_us: u64,
    pub rebuilds: u64,
    /// Watch errors seen (each followed by a reconnect with backoff).
    pub watch_errors: u64,
}

/// A pool in force, as `/status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolSummary {
    pub name: String,
    /// Ranges `a-b`, or single addresses.
    pub addresses: Vec<String>,
    pub auto_assign: bool,
    /// Addresses in use by Services (served or being recorded).
    pub allocated: u64,
    /// Addresses free, a decimal string (an IPv6 /64 alone exceeds what JSON numbers
    /// carry exactly).
    pub free: String,
}

impl PoolSummary {
    fn of(
        p: &crate::pools::PoolDef,
        uses: &BTreeMap<String, crate::pools::PoolUse>,
    ) -> PoolSummary {
        let used = uses.get(&p.name);
        PoolSummary {
            allocated: used.map_or(0, |u| u.allocated),
            free: used.map_or(0, |u| u.free()).to_string(),
            name: p.name.clone(),
            addresses: p
                .ranges
                .0
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect(),
            auto_assign: p.auto_assign,
        }
    }
}

/// Handles to the controller's output.
pub struct Handle {
    /// The desired instances; `None` until the caches synced.
    pub desired: watch::Receiver<Option<Desired>>,
    pub status: watch::Receiver<KubeStatus>,
}

pub fn start(client: Client, opts: Options, resolver: Resolver, events: Option<Events>) -> Handle {
    let (dtx, drx) = watch::channel(None);
    let (stx, srx) = watch::channel(KubeStatus {
        configmap: opts.configmap(),
        ..Default::default()
    });
    tokio::spawn(run(client, opts, resolver, events, dtx, stx));
    Handle {
        desired: drx,
        status: srx,
    }
}

/// A watch event, or the failed watch (`what`) that will reconnect with backoff.
type Watched = Result<Change, (&'static str, watcher::Error)>;

/// Wires the watches, the timer and failed status writes to `World`, and publishes.
async fn run(
    client: Client,
    opts: Options,
    resolver: Resolver,
    events: Option<Events>,
    dtx: watch::Sender<Option<Desired>>,
    stx: watch::Sender<KubeStatus>,
) {
    let mut stream = futures::stream::select_all(watches(&client, &opts));
    // Without LoadBalancer mode nobody writes status; the sender lives as long as the loop.
    let (_no_lease, mut allocator) = watch::channel(false);
    if let Some(l) = &opts.lease {
        allocator = crate::lease::start(client.clone(), l.clone());
    }
    let mut world = World::new(&opts);
    let mut iface = NodeInterface::default();
    let mut told = Told::default();
    let mut spoke = false;
    // Failed status writes come back here, so they are retried.
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<Failed>();
    loop {
        let deadline = world.next_deadline();
        let moved = tokio::select! {
            w = stream.next() => match w {
                Some(w) => {
                    let mut moved = take(&mut world, w, &stx);
                    // A burst (a relist, a thousand Services created at once) is applied
                    // whole before one rebuild: a rebuild per event made it quadratic.
                    for _ in 0..MAX_BURST {
                        match stream.next().now_or_never() {
                            Some(Some(w)) => moved |= take(&mut world, w, &stx),
                            Some(None) | None => break,
                        }
                    }
                    moved
                }
                None => break,
            },
            _ = sleep_until(deadline) => world.on_timer(Instant::now()),
            Ok(()) = allocator.changed() => world.set_allocator(*allocator.borrow_and_update()),
            Some(f) = failed_rx.recv() => {
                match f {
                    Failed::Service(key) => world.write_failed(key, Instant::now()),
                    Failed::Pool(name) => world.pool_write_failed(name, Instant::now()),
                }
                false
            }
        };
        if !moved || !world.synced() {
            continue;
        }
        iface
            .refresh(&resolver, world.my_addresses(), &opts.settings.interface)
            .await;
        let started = std::time::Instant::now();
        let d = world.rebuild(&iface.link);
        let took = started.elapsed();
        let speaker = world.speaks_for_cluster();
        if speaker && !spoke {
            // A new speaker tells what is still wrong, even if found before its term.
            told.forget_cluster();
        }
        spoke = speaker;
        for n in told.news(&d) {
            // Every node logs what it found; one pod tells the cluster, each node about
            // itself.
            if let Some(ev) = events
                .as_ref()
                .filter(|_| speaker || n.regarding == Regarding::Node)
            {
                tell(ev, &opts, &world, n);
            }
        }
        let (refused, overlapping) = world.pool_problems();
        for n in told.pool_news(&refused, &overlapping) {
            if let Some(ev) = events.as_ref().filter(|_| speaker) {
                tell(ev, &opts, &world, n);
            }
        }
        // A refused BGPPeer is told by one pod; one this node cannot use, by this node.
        let (refused, unusable) = world.peer_problems();
        for (n, everyone) in told.peer_news(&refused, &unusable) {
            if let Some(ev) = events.as_ref().filter(|_| speaker || everyone) {
                tell(ev, &opts, &world, n);
            }
        }
        for (key, ips) in world.writes_due(&d) {
            write_status(&client, key, ips, events.clone(), failed_tx.clone());
        }
        // What the plan serves or is recording, each address in its first pool.
        let uses = crate::pools::usage(&world.pool_defs(), d.lb.in_use());
        for (name, status) in world.pool_status_due(&uses) {
            write_pool_status(&client, name, status, failed_tx.clone());
        }
        // The status first: whoever sees a new desired state sees the status that goes
        // with it (readiness).
        stx.send_replace(world.status(&d, &iface.link, took, &uses));
        dtx.send_if_modified(|cur| {
            let same = cur.as_ref().is_some_and(|c| {
                c.instances == d.instances && c.forward == d.forward && c.bgp == d.bgp
            });
            *cur = Some(d);
            !same
        });
    }
    tracing::error!("Kubernetes watches ended: the last desired state stays in force");
}

/// Watch events applied at most before a rebuild, so a flood still yields rebuilds.
const MAX_BURST: usize = 4096;

/// Applies one watch event or counts its watch's failure; true when the desired state may
/// have moved.
fn take(world: &mut World, w: Watched, stx: &watch::Sender<KubeStatus>) -> bool {
    match w {
        Ok(change) => world.apply(&change, Instant::now()),
        Err((POOLS, e)) if not_installed(&e) => world.pools_missing(),
        Err((PEERS, e)) if not_installed(&e) => world.peers_missing(),
        Err((what, e)) => {
            world.watch_errors += 1;
            tracing::warn!(watch = what, error = %e, "watch failed: keeping the last state, retrying with backoff");
            stx.send_modify(|s| s.watch_errors = world.watch_errors);
            false
        }
    }
}

/// One stream per watch; Services and EndpointSlices only when a feature needs them.
fn watches(client: &Client, opts: &Options) -> Vec<BoxStream<'static, Watched>> {
    let s = &opts.settings;
    let by_label = watcher::Config::default().labels(&opts.node_selector);
    let by_name =
        watcher::Config::default().fields(&format!("metadata.name={}", opts.configmap_name));
    let mut out = vec![
        watch_kind(
            Api::<Node>::all(client.clone()),
            by_label,
            "nodes",
            Change::Node,
        ),
        watch_kind(
            Api::<ConfigMap>::namespaced(client.clone(), &opts.configmap_namespace),
            by_name,
            "configmap",
            Change::Map,
        ),
    ];
    if s.forwarding || s.lb.is_some() {
        out.push(watch_kind(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
            "endpointslices",
            Change::Slice,
        ));
    }
    if s.lb.is_some() {
        out.push(watch_kind(
            Api::<DynamicObject>::all_with(client.clone(), &crate::pools::api_resource()),
            watcher::Config::default(),
            POOLS,
            Change::Pool,
        ));
        // Only labels matter (pools' namespace selectors); namespaces change rarely.
        out.push(watch_kind(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
            "namespaces",
            Change::Namespace,
        ));
    }
    if s.bgp.is_some() {
        out.push(watch_kind(
            Api::<DynamicObject>::all_with(client.clone(), &crate::bgp_peers::api_resource()),
            watcher::Config::default(),
            PEERS,
            Change::Peer,
        ));
        // Passwords: Secrets of edgevip's own namespace only (the Role grants no more).
        out.push(watch_kind(
            Api::<Secret>::namespaced(client.clone(), &opts.configmap_namespace),
            watcher::Config::default(),
            "secrets",
            Change::Secret,
        ));
    }
    if s.lb.is_some() || s.forwarding {
        // The API cannot select on spec.type, so the watch sees all Services; the cache
        // keeps a few fields of each, not the objects.
        out.push(watch_kind(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            "services",
            Change::Service,
        ));
    }
    out
}

/// The VIPPool and BGPPeer watches, by the names their errors carry.
const POOLS: &str = "vippools";
const PEERS: &str = "bgppeers";

/// A list (or watch start) answered 404: the resource is not served, its CRD not installed.
fn not_installed(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.is_not_found(),
        _ => false,
    }
}

fn watch_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    wrap: fn(Event<K>) -> Change,
) -> BoxStream<'static, Watched>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, config)
        .backoff(backoff::Patient::default())
        .map(move |r| r.map(wrap).map_err(|e| (what, e)))
        .boxed()
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The interface that holds the node's address, asked again only when it changes.
#[derive(Default)]
struct NodeInterface {
    asked_for: Option<Vec<IpAddr>>,
    link: NodeLink,
}

impl NodeInterface {
    async fn refresh(
        &mut self,
        resolver: &Resolver,
        addresses: Vec<IpAddr>,
        given: &Option<String>,
    ) {
        if self.asked_for.as_ref() != Some(&addresses) {
            self.link = resolver(addresses.clone(), given.clone()).await;
            self.asked_for = Some(addresses);
            let subnets: Vec<String> = self
                .link
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect();
            tracing::info!(interface = ?self.link.interface, ?subnets, "interface of the node address");
        }
    }
}

fn tell(ev: &Events, opts: &Options, world: &World, n: Notice) {
    let (ns, name) = (&opts.configmap_namespace, &opts.configmap_name);
    match &n.regarding {
        Regarding::Node => ev.on_node(&opts.settings.node_name, n.kind, n.reason, n.note),
        Regarding::ConfigMap => ev.on_configmap(ns, name, n.kind, n.reason, n.note),
        Regarding::Service(key) => {
            let (ns, name) = key.split_once('/').unwrap_or(("", key));
            ev.on_service(ns, name, n.kind, n.reason, n.note)
        }
        Regarding::Pool(name) => ev.on_pool(name, world.pool_uid(name), n.kind, n.reason, n.note),
        Regarding::Peer(name) => ev.on_peer(name, world.peer_uid(name), n.kind, n.reason, n.note),
    }
}

/// A status write that failed, to retry.
enum Failed {
    /// `ns/name`.
    Service(String),
    Pool(String),
}

/// Records a VIPPool's status (through the status subresource, as Services'); a failure
/// comes back on `failed`.
fn write_pool_status(
    client: &Client,
    name: String,
    status: serde_json::Value,
    failed: mpsc::UnboundedSender<Failed>,
) {
    let api = Api::<DynamicObject>::all_with(client.clone(), &crate::pools::api_resource());
    tokio::spawn(async move {
        // The resourceVersion read is the precondition: a pool edited in between is a 409,
        // and its status is computed again from the edit.
        let written = match api.get(&name).await {
            Ok(pool) => {
                let patch = serde_json::json!({
                    "metadata": {"resourceVersion": pool.metadata.resource_version},
                    "status": status,
                });
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => {
                tracing::debug!(pool = %name, allocated = %status["allocated"], free = %status["free"], "VIPPool status written")
            }
            Err(e) => {
                tracing::warn!(pool = %name, error = %e, "cannot write VIPPool status; retrying");
                let _ = failed.send(Failed::Pool(name));
            }
        }
    });
}

/// Records an allocation in Service status (`None`: clears what edgevip recorded); a
/// failure comes back on `failed`.
fn write_status(
    client: &Client,
    key: String,
    ips: Option<Vec<IpAddr>>,
    events: Option<Events>,
    failed: mpsc::UnboundedSender<Failed>,
) {
    let Some((ns, name)) = key.split_once('/') else {
        return;
    };
    let api = Api::<Service>::namespaced(client.clone(), ns);
    let (ns, name) = (ns.to_string(), name.to_string());
    tokio::spawn(async move {
        // Read, then write with the resourceVersion read as precondition: a Service changed
        // in between (by its owner or another writer) is a 409, retried from a fresh read.
        let written = match api.get(&name).await {
            Ok(svc) => {
                let rv = svc.metadata.resource_version.unwrap_or_default();
                let ingress = match &ips {
                    Some(ips) => ips
                        .iter()
                        .map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"}))
                        .collect(),
                    None => serde_json::Value::Null,
                };
                let patch = serde_json::json!({
                    "metadata": {"resourceVersion": rv},
                    "status": {"loadBalancer": {"ingress": ingress}},
                });
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => {
                let (reason, note) = match &ips {
                    Some(ips) => {
                        let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
                        let ips = ips.join(", ");
                        tracing::info!(service = %key, %ips, "VIP recorded in Service status");
                        (
                            "VIPAssigned",
                            format!("{ips} (served by the VRRP master of the edge nodes)"),
                        )
                    }
                    None => {
                        tracing::info!(service = %key, "VIP cleared from Service status");
                        ("VIPWithdrawn", "edgevip no longer serves this Service: its VIP is cleared from the status".to_string())
                    }
                };
                if let Some(ev) = events {
                    ev.on_service(&ns, &name, Kind::Normal, reason, note);
                }
            }
            Err(e) => {
                tracing::warn!(service = %key, ips = ?ips, error = %e, "cannot write the VIP to Service status; retrying");
                let _ = failed.send(Failed::Service(key));
            }
        }
    });
}
