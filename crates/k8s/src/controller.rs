//! Follows the cluster with watches (no polling) and publishes each new desired state.
//! The API server going away changes nothing: the last state stays, watches reconnect with
//! backoff. A deleted ConfigMap releases its VIPs only after a grace period, so a delete and
//! re-create (or a brief wrong answer) does not drop traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::Serialize;
use tokio::sync::watch;

use crate::Reject;
use crate::desired::{Builder, Desired, Settings, Source};
use crate::events::{Events, Kind};
use crate::forwarding::{self, Slice, SvcPorts};
use crate::nodes::NodeInfo;
use crate::services::SvcInfo;

/// Finds the interface that holds one of the node's addresses (netlink, in the daemon).
pub type Resolver =
    Arc<dyn Fn(Vec<IpAddr>) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

#[derive(Clone)]
pub struct Options {
    pub settings: Settings,
    pub configmap_namespace: String,
    pub configmap_name: String,
    /// Label selector of the edge nodes, e.g. `edgenode=true`.
    pub node_selector: String,
    pub release_grace: Duration,
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
    /// LoadBalancer Services: `ns/name` → VIP served, and those without one (why).
    pub load_balancers: BTreeMap<String, IpAddr>,
    pub load_balancer_problems: BTreeMap<String, String>,
    /// This node records allocations in Service status.
    pub status_writer: bool,
    /// Forwarding: `VIP:port/proto (nat|proxy) -> N endpoints`.
    pub forwarded: Vec<String>,
    /// Time the last rebuild of the desired state took, in microseconds.
    pub last_rebuild_us: u64,
    pub rebuilds: u64,
    /// Watch errors seen (each followed by a reconnect with backoff).
    pub watch_errors: u64,
}

/// Handles to the controller's output.
pub struct Handle {
    /// The desired instances; `None` until the caches synced.
    pub desired: watch::Receiver<Option<Desired>>,
    pub status: watch::Receiver<KubeStatus>,
}

/// Boxed: the objects are large, and events are few.
enum Ev {
    Node(Box<Result<Event<Node>, watcher::Error>>),
    Map(Box<Result<Event<ConfigMap>, watcher::Error>>),
    Svc(Box<Result<Event<Service>, watcher::Error>>),
    /// A status write failed: rebuild to write again.
    Retry,
    Slice(Box<Result<Event<EndpointSlice>, watcher::Error>>),
}

pub fn start(client: Client, opts: Options, resolver: Resolver, events: Option<Events>) -> Handle {
    let (dtx, drx) = watch::channel(None);
    let (stx, srx) = watch::channel(KubeStatus {
        configmap: format!("{}/{}", opts.configmap_namespace, opts.configmap_name),
        ..Default::default()
    });
    tokio::spawn(run(client, opts, resolver, events, dtx, stx));
    Handle {
        desired: drx,
        status: srx,
    }
}

struct State {
    nodes: BTreeMap<String, NodeInfo>,
    node_buf: Option<BTreeMap<String, NodeInfo>>,
    nodes_synced: bool,
    map: Option<Source>,
    map_buf: Option<Option<Source>>,
    map_synced: bool,
    /// When the ConfigMap disappeared; its VIPs stay until the grace period ends.
    gone_since: Option<tokio::time::Instant>,
    interface: Option<String>,
    iface_for: Vec<IpAddr>,
    published: BTreeSet<Reject>,
    published_warnings: BTreeSet<Reject>,
    watch_errors: u64,
    services: BTreeMap<String, SvcInfo>,
    svc_buf: Option<BTreeMap<String, SvcInfo>>,
    services_synced: bool,
    /// Status writes sent and not yet seen back: `ns/name` → VIP.
    in_flight: BTreeMap<String, IpAddr>,
    published_lb: BTreeMap<String, String>,
    rebuilds: u64,
    /// Ports of every Service and the EndpointSlices of every Service (a few fields each),
    /// so a ConfigMap edit naming another Service needs no new watch.
    ports: BTreeMap<String, SvcPorts>,
    ports_buf: Option<BTreeMap<String, SvcPorts>>,
    slices: BTreeMap<String, Slice>,
    slices_buf: Option<BTreeMap<String, Slice>>,
    slices_synced: bool,
    /// Services the ConfigMap forwards to: only their changes cause a rebuild.
    referenced: BTreeSet<String>,
}

async fn run(
    client: Client,
    opts: Options,
    resolver: Resolver,
    events: Option<Events>,
    dtx: watch::Sender<Option<Desired>>,
    stx: watch::Sender<KubeStatus>,
) {
    let nodes = watcher::watcher(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().labels(&opts.node_selector),
    )
    .default_backoff()
    .map(|e| Ev::Node(Box::new(e)));
    let maps = watcher::watcher(
        Api::<ConfigMap>::namespaced(client.clone(), &opts.configmap_namespace),
        watcher::Config::default().fields(&format!("metadata.name={}", opts.configmap_name)),
    )
    .default_backoff()
    .map(|e| Ev::Map(Box::new(e)));
    let mut streams: Vec<BoxStream<'static, Ev>> = vec![nodes.boxed(), maps.boxed()];
    if opts.settings.forwarding {
        let slices = watcher::watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(|e| Ev::Slice(Box::new(e)));
        streams.push(slices.boxed());
    }
    if opts.settings.lb.is_some() || opts.settings.forwarding {
        // The API cannot select on spec.type, so the watch sees all Services and keeps a
        // few fields of each (`SvcInfo` of LoadBalancers, ports), not the objects.
        let svcs = watcher::watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(|e| Ev::Svc(Box::new(e)));
        streams.push(svcs.boxed());
    }
    let mut stream = futures::stream::select_all(streams);
    let object = format!(
        "ConfigMap {}/{}",
        opts.configmap_namespace, opts.configmap_name
    );
    let mut st = State {
        nodes: BTreeMap::new(),
        node_buf: None,
        nodes_synced: false,
        map: None,
        map_buf: None,
        map_synced: false,
        gone_since: None,
        interface: None,
        iface_for: Vec::new(),
        published: BTreeSet::new(),
        published_warnings: BTreeSet::new(),
        watch_errors: 0,
        services: BTreeMap::new(),
        svc_buf: None,
        services_synced: opts.settings.lb.is_none() && !opts.settings.forwarding,
        in_flight: BTreeMap::new(),
        published_lb: BTreeMap::new(),
        rebuilds: 0,
        ports: BTreeMap::new(),
        ports_buf: None,
        slices: BTreeMap::new(),
        slices_buf: None,
        slices_synced: !opts.settings.forwarding,
        referenced: BTreeSet::new(),
    };
    let mut builder = Builder::default();
    // Failed status writes come back here, so they are retried.
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    loop {
        let grace_end = st.gone_since.map(|t| t + opts.release_grace);
        let ev = tokio::select! {
            ev = stream.next() => match ev {
                Some(ev) => Some(ev),
                None => break,
            },
            _ = sleep_until(grace_end) => None,
            Some(key) = failed_rx.recv() => {
                st.in_flight.remove(&key);
                tokio::time::sleep(Duration::from_millis(500)).await;
                Some(Ev::Retry)
            }
        };
        match ev {
            Some(Ev::Retry) => {}
            Some(Ev::Slice(r)) => match *r {
                Ok(e) => {
                    if !slice_event(&mut st, e) {
                        continue;
                    }
                }
                Err(e) => watch_error(&mut st, "endpointslices", &e),
            },
            Some(Ev::Node(r)) => match *r {
                Ok(e) => node_event(&mut st, e),
                Err(e) => watch_error(&mut st, "nodes", &e),
            },
            Some(Ev::Map(r)) => match *r {
                Ok(e) => map_event(&mut st, e, &object),
                Err(e) => watch_error(&mut st, "configmap", &e),
            },
            Some(Ev::Svc(r)) => match *r {
                Ok(e) => {
                    // Services that are not LoadBalancers change often (Endpoints-driven
                    // controllers touch them): skip the rebuild when nothing we use moved.
                    if !service_event(&mut st, e) {
                        continue;
                    }
                }
                Err(e) => watch_error(&mut st, "services", &e),
            },
            None => {
                tracing::warn!(configmap = %object, grace = ?opts.release_grace, "ConfigMap still gone after the grace period: releasing its VIPs");
                st.gone_since = None;
                st.map = None;
            }
        }
        if !(st.nodes_synced && st.map_synced && st.services_synced && st.slices_synced) {
            stx.send_modify(|s| s.watch_errors = st.watch_errors);
            continue;
        }
        let node_list: Vec<NodeInfo> = st.nodes.values().cloned().collect();
        let me = st.nodes.get(&opts.settings.node_name);
        let mine: Vec<IpAddr> = me.map(|n| n.addresses.clone()).unwrap_or_default();
        if mine != st.iface_for && opts.settings.interface.is_none() {
            st.interface = resolver(mine.clone()).await;
            st.iface_for = mine;
            tracing::info!(interface = ?st.interface, "interface of the node address");
        }
        let started = std::time::Instant::now();
        let svc_list: Vec<SvcInfo> = st
            .services
            .values()
            .map(|s| SvcInfo {
                pending: st.in_flight.get(&s.key()).copied(),
                ..s.clone()
            })
            .collect();
        let mut d = builder.build(
            &opts.settings,
            &node_list,
            st.interface.as_deref(),
            st.map.as_ref(),
            &svc_list,
        );
        if opts.settings.forwarding {
            let (spec, problems) = forwarding::spec(
                &d.services,
                &st.ports,
                &st.slices,
                opts.settings.proxy_header,
            );
            d.forward = spec;
            for (vip, why) in problems {
                d.warnings.push(Reject {
                    object: object.clone(),
                    field: format!("data[\"{vip}\"]"),
                    message: format!("{why}: nothing is forwarded for it yet"),
                });
            }
        }
        st.referenced = d
            .services
            .iter()
            .map(|(_, r)| format!("{}/{}", r.namespace, r.name))
            .collect();
        let took = started.elapsed();
        st.rebuilds += 1;
        if let Some(ev) = &events {
            tell(ev, &opts, &mut st, &d);
        }
        if d.writer {
            write_status(&client, &mut st, &d, events.as_ref(), &failed_tx);
        }
        stx.send_replace(KubeStatus {
            synced: true,
            configmap: format!("{}/{}", opts.configmap_namespace, opts.configmap_name),
            configmap_present: st.map.is_some() && st.gone_since.is_none(),
            release_pending: st.gone_since.is_some(),
            edge_nodes: st.nodes.keys().cloned().collect(),
            interface: opts.settings.interface.clone().or(st.interface.clone()),
            instances: d.instances.iter().map(|i| i.name.clone()).collect(),
            rejected: d.rejects.clone(),
            warnings: d.warnings.clone(),
            watch_errors: st.watch_errors,
            load_balancers: d.lb.serving.clone(),
            load_balancer_problems: d.lb.problems.clone(),
            status_writer: d.writer,
            forwarded: d
                .forward
                .nat
                .iter()
                .map(|n| {
                    format!(
                        "{} {}/{} nat -> {} endpoints",
                        std::net::SocketAddr::new(n.vip, n.port),
                        n.proto.as_str(),
                        n.port,
                        n.backends.len()
                    )
                })
                .chain(d.forward.proxy.iter().map(|p| {
                    format!(
                        "{} tcp proxy -> {} endpoints",
                        std::net::SocketAddr::new(p.vip, p.port),
                        p.backends.len()
                    )
                }))
                .collect(),
            last_rebuild_us: took.as_micros() as u64,
            rebuilds: st.rebuilds,
        });
        dtx.send_if_modified(|cur| {
            let same = cur
                .as_ref()
                .is_some_and(|c| c.instances == d.instances && c.forward == d.forward);
            *cur = Some(d);
            !same
        });
    }
    tracing::error!("Kubernetes watches ended: the last desired state stays in force");
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn watch_error(st: &mut State, what: &str, e: &watcher::Error) {
    st.watch_errors += 1;
    tracing::warn!(watch = what, error = %e, "watch failed: keeping the last state, retrying with backoff");
}

fn node_event(st: &mut State, e: Event<Node>) {
    match e {
        Event::Apply(n) => {
            let i = NodeInfo::from_node(&n);
            st.nodes.insert(i.name.clone(), i);
        }
        Event::Delete(n) => {
            st.nodes.remove(&n.metadata.name.unwrap_or_default());
        }
        Event::Init => st.node_buf = Some(BTreeMap::new()),
        Event::InitApply(n) => {
            let i = NodeInfo::from_node(&n);
            st.node_buf
                .get_or_insert_default()
                .insert(i.name.clone(), i);
        }
        Event::InitDone => {
            // A re-list replaces the cache at once, so a half-listed set never applies.
            st.nodes = st.node_buf.take().unwrap_or_default();
            st.nodes_synced = true;
        }
    }
}

/// Applies a Service event; false when it cannot change the desired state (a Service
/// that neither is nor was a LoadBalancer).
fn service_event(st: &mut State, e: Event<Service>) -> bool {
    let info = |s: &Service| SvcInfo::from_service(s);
    match e {
        Event::Apply(s) => {
            let i = info(&s);
            let key = i.key();
            let ports = SvcPorts::from_service(&s);
            let ports_moved = st.ports.insert(key.clone(), ports.clone()) != Some(ports)
                && st.referenced.contains(&key);
            let lb_moved = if !i.load_balancer {
                st.services.remove(&key).is_some()
            } else {
                st.services.insert(key, i.clone()) != Some(i)
            };
            lb_moved || ports_moved
        }
        Event::Delete(s) => {
            let key = info(&s).key();
            let was_ref = st.ports.remove(&key).is_some() && st.referenced.contains(&key);
            st.services.remove(&key).is_some() || was_ref
        }
        Event::Init => {
            st.svc_buf = Some(BTreeMap::new());
            st.ports_buf = Some(BTreeMap::new());
            false
        }
        Event::InitApply(s) => {
            let i = info(&s);
            st.ports_buf
                .get_or_insert_default()
                .insert(i.key(), SvcPorts::from_service(&s));
            if i.load_balancer {
                st.svc_buf.get_or_insert_default().insert(i.key(), i);
            }
            false
        }
        Event::InitDone => {
            st.services = st.svc_buf.take().unwrap_or_default();
            st.ports = st.ports_buf.take().unwrap_or_default();
            st.services_synced = true;
            true
        }
    }
}

/// Applies an EndpointSlice event; false when no forwarded Service is concerned.
fn slice_event(st: &mut State, e: Event<EndpointSlice>) -> bool {
    let key = |s: &EndpointSlice| {
        format!(
            "{}/{}",
            s.metadata.namespace.as_deref().unwrap_or(""),
            s.metadata.name.as_deref().unwrap_or("")
        )
    };
    match e {
        Event::Apply(s) => {
            let k = key(&s);
            let new = Slice::from_slice(&s);
            let old = match &new {
                Some(n) => st.slices.insert(k, n.clone()),
                None => st.slices.remove(&k),
            };
            let touched = |x: &Option<Slice>| {
                x.as_ref()
                    .is_some_and(|x| st.referenced.contains(&x.service))
            };
            old != new && (touched(&old) || touched(&new))
        }
        Event::Delete(s) => {
            let old = st.slices.remove(&key(&s));
            old.is_some_and(|o| st.referenced.contains(&o.service))
        }
        Event::Init => {
            st.slices_buf = Some(BTreeMap::new());
            false
        }
        Event::InitApply(s) => {
            if let Some(n) = Slice::from_slice(&s) {
                st.slices_buf.get_or_insert_default().insert(key(&s), n);
            }
            false
        }
        Event::InitDone => {
            st.slices = st.slices_buf.take().unwrap_or_default();
            st.slices_synced = true;
            true
        }
    }
}

/// Records allocations in Service status (the writer only). One write per Service and
/// VIP until the watch shows it, so a slow API server is not flooded.
fn write_status(
    client: &Client,
    st: &mut State,
    d: &Desired,
    events: Option<&Events>,
    failed: &tokio::sync::mpsc::UnboundedSender<String>,
) {
    st.in_flight.retain(|k, ip| d.lb.writes.get(k) == Some(ip));
    for (key, ip) in &d.lb.writes {
        if st.in_flight.get(key) == Some(ip) {
            continue;
        }
        st.in_flight.insert(key.clone(), *ip);
        let Some((ns, name)) = key.split_once('/') else {
            continue;
        };
        let api = Api::<Service>::namespaced(client.clone(), ns);
        let (name, ip, key) = (name.to_string(), *ip, key.clone());
        let ev = events.cloned();
        let failed = failed.clone();
        tokio::spawn(async move {
            let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(service = %key, %ip, "VIP recorded in Service status");
                    if let Some(ev) = ev {
                        ev.on_service(
                            api_ns(&key),
                            &name,
                            Kind::Normal,
                            "VIPAssigned",
                            format!("{ip} (served by the VRRP master of the edge nodes)"),
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(service = %key, %ip, error = %e, "cannot record the VIP in Service status; retrying");
                    let _ = failed.send(key);
                }
            }
        });
    }
}

fn api_ns(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn map_event(st: &mut State, e: Event<ConfigMap>, object: &str) {
    let source = |m: ConfigMap| Source {
        object: object.to_string(),
        data: m.data.unwrap_or_default(),
    };
    match e {
        Event::Apply(m) => set_map(st, Some(source(m)), object),
        Event::Delete(_) => set_map(st, None, object),
        Event::Init => st.map_buf = Some(None),
        Event::InitApply(m) => st.map_buf = Some(Some(source(m))),
        Event::InitDone => {
            let m = st.map_buf.take().flatten();
            st.map_synced = true;
            set_map(st, m, object);
        }
    }
}

fn set_map(st: &mut State, m: Option<Source>, object: &str) {
    match m {
        Some(m) => {
            if st.gone_since.take().is_some() {
                tracing::info!(configmap = %object, "ConfigMap is back within the grace period");
            }
            st.map = Some(m);
        }
        None if st.map.is_some() && st.gone_since.is_none() => {
            tracing::warn!(configmap = %object, "ConfigMap deleted: its VIPs stay for the grace period");
            st.gone_since = Some(tokio::time::Instant::now());
        }
        None => {}
    }
}

/// Events for rejections and warnings not told before (the set is remembered, so a
/// re-list or an unrelated change does not repeat them).
fn tell(ev: &Events, opts: &Options, st: &mut State, d: &Desired) {
    let now: BTreeSet<Reject> = d.rejects.iter().cloned().collect();
    for r in now.difference(&st.published) {
        tracing::warn!(object = %r.object, field = %r.field, "rejected: {}", r.message);
        if r.field == "node" {
            ev.on_node(
                &opts.settings.node_name,
                Kind::Warning,
                "NotServing",
                r.message.clone(),
            );
        } else {
            ev.on_configmap(
                &opts.configmap_namespace,
                &opts.configmap_name,
                Kind::Warning,
                "RejectedEntry",
                format!("{}: {}", r.field, r.message),
            );
        }
    }
    st.published = now;
    let now: BTreeSet<Reject> = d.warnings.iter().cloned().collect();
    for r in now.difference(&st.published_warnings) {
        tracing::warn!(object = %r.object, field = %r.field, "{}", r.message);
        ev.on_configmap(
            &opts.configmap_namespace,
            &opts.configmap_name,
            Kind::Warning,
            "UnsupportedMethod",
            format!("{}: {}", r.field, r.message),
        );
    }
    st.published_warnings = now;
    for (key, why) in &d.lb.problems {
        if st.published_lb.get(key) != Some(why) {
            tracing::warn!(service = %key, "no VIP: {why}");
            let name = key.split_once('/').map_or("", |(_, n)| n);
            ev.on_service(api_ns(key), name, Kind::Warning, "NoVIP", why.clone());
        }
    }
    st.published_lb = d.lb.problems.clone();
}
