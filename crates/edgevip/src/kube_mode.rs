//! `edgevip run --kubernetes`: the same engine, fed by the cluster instead of a file. The
//! controller publishes desired instances; the engine applies only what changed. Losing
//! the API server changes nothing here: the last desired state stays in force.
//!
//! `run` checks the command line (`options`), wires the client, the controller, the API
//! and the engine, and hands them to the loop (`event_loop`), which owns no I/O of its own.

mod event_loop;
mod options;
mod strangers;

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use edgevip_k8s::controller::{self, KubeStatus, Resolver};
use edgevip_k8s::desired::Desired;
use edgevip_k8s::events::{Events, Kind};
use edgevip_k8s::trust::{Cidr, NodeLink};
use tokio::sync::watch;
use vrrp::router::State;

use crate::bgp::Speaker;
use crate::cli::KubeArgs;
use crate::daemon::Base;
use crate::engine::{Engine, Shared, Transition};
use event_loop::{Inputs, Plane, Signal, Signals};
pub use options::{ArgError, KubeOptions};

pub async fn run(args: KubeArgs) -> ExitCode {
    let opts = match KubeOptions::check(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("edgevip: {e}");
            return ExitCode::from(2);
        }
    };
    let client = match client(opts.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgevip: Kubernetes client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut base = match Base::open(&[]).await {
        Ok(b) => b,
        Err(code) => return code,
    };
    let shared = base.shared.clone();
    let node_name = opts.controller.settings.node_name.clone();
    let events = Events::new(client.clone(), &node_name);
    tracing::info!(node = %node_name, configmap = %opts.controller.configmap(), selector = %opts.controller.node_selector, "edgevip running in Kubernetes mode");
    let handle = controller::start(
        client,
        opts.controller,
        resolver(&shared),
        Some(events.clone()),
    );
    let (ready, ready_rx) = watch::channel(false);
    let (kube_status, kube_rx) = watch::channel(serde_json::Value::Null);
    let surfaces = &args.surfaces;
    // /status (Service names, VIPs, backends) only where asked or private (loopback).
    let detail = surfaces.api_status || opts.api_listen.ip().is_loopback();
    if let Err(code) = base.serve_api(
        opts.api_listen,
        detail,
        surfaces.api_max_connections as usize,
        ready_rx.clone(),
        Some(kube_rx.clone()),
    ) {
        return code;
    }
    // The loopback status listener is a convenience (`edgevip status`): failing to bind it
    // (say --api-listen 0.0.0.0 took the port) is logged, not fatal.
    if surfaces.status_listen != opts.api_listen
        && base
            .serve_api(
                surfaces.status_listen,
                true,
                surfaces.api_max_connections as usize,
                ready_rx,
                Some(kube_rx),
            )
            .is_err()
    {
        tracing::warn!(listen = %surfaces.status_listen, "no status listener: /status is served only with --api-status or on another --status-listen");
    }
    let proxy_limits = edgevip_forward::proxy::Limits::from_fd_limit(
        crate::daemon::fd_limit(),
        surfaces.proxy_max_connections,
        surfaces.proxy_max_connections_per_frontend,
        surfaces.proxy_first_byte_timeout,
        surfaces.proxy_idle_timeout,
    );
    tracing::info!(
        total = proxy_limits.total,
        per_frontend = proxy_limits.per_frontend,
        "PROXY connection caps"
    );
    let inputs = Inputs {
        desired: handle.desired,
        status: handle.status,
        transitions: shared.transitions.subscribe(),
    };
    let speaker = Speaker::start(
        shared.netlink.clone(),
        shared.metrics.clone(),
        shared.board.clone(),
    );
    tell_sessions(speaker.subscribe(), events.clone(), node_name.clone());
    let daemon = Daemon {
        engine: Engine::new(shared.clone()),
        speaker,
        forwarder: Forwarder::new(shared.metrics.proxy.clone(), proxy_limits),
        shared,
        ready,
        kube_status,
        events,
        node_name,
        instances: Vec::new(),
        strangers: strangers::Strangers::default(),
    };
    event_loop::serve(inputs, &mut base, daemon).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The interface given, or else the one holding one of the node's addresses, and its
/// addresses, asked of netlink.
fn resolver(shared: &Shared) -> Resolver {
    let netlink = shared.netlink.clone();
    Arc::new(move |addrs, given| {
        let netlink = netlink.clone();
        Box::pin(async move {
            let name = match given {
                Some(n) => Some(n),
                None => netlink.interface_holding(&addrs).await.ok().flatten(),
            };
            let mut addresses = Vec::new();
            if let Some(n) = &name {
                match netlink.link_by_name(n).await {
                    Ok(link) => {
                        let all = netlink.addresses(link.index).await.unwrap_or_default();
                        addresses = node_subnets(&all, &addrs);
                    }
                    Err(e) => {
                        tracing::warn!(interface = %n, error = %e, "cannot read the interface's addresses")
                    }
                }
            }
            NodeLink {
                interface: name,
                addresses,
            }
        })
    })
}

/// The node's own addresses on its interface, with their prefixes: those that are its
/// InternalIPs, else (the interface given holds none) the first of each family. VIPs held
/// on the interface are never among them (they come after the node's own addresses).
fn node_subnets(on_link: &[edgevip_netio::AddrInfo], internal: &[IpAddr]) -> Vec<Cidr> {
    let mine: Vec<Cidr> = on_link
        .iter()
        .filter(|a| internal.contains(&a.addr))
        .map(|a| Cidr::new(a.addr, a.prefix_len))
        .collect();
    if !mine.is_empty() {
        return mine;
    }
    [true, false]
        .into_iter()
        .filter_map(|v4| {
            on_link.iter().find(|a| {
                a.addr.is_ipv4() == v4
                    && !matches!(a.addr, IpAddr::V6(v6) if v6.is_unicast_link_local())
            })
        })
        .map(|a| Cidr::new(a.addr, a.prefix_len))
        .collect()
}

impl Signals for Base {
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
        }
    }
}

/// The data plane of this node: the engine's instances, forwarding, and what reports them.
struct Daemon {
    engine: Engine,
    /// `announce: bgp` instances: VIPs on `lo`, routes through FRR.
    speaker: Speaker,
    forwarder: Forwarder,
    shared: Shared,
    /// `/readyz`: true once a desired state has been applied.
    ready: watch::Sender<bool>,
    /// The controller's status as `/status` shows it.
    kube_status: watch::Sender<serde_json::Value>,
    events: Events,
    node_name: String,
    /// The instances the controller last asked for, whose drops `strangers` follows.
    instances: Vec<String>,
    strangers: strangers::Strangers,
}

impl Plane for Daemon {
    async fn apply(&mut self, d: &Desired) {
        self.forwarder.apply(&d.forward).await;
        let started = std::time::Instant::now();
        let (routed, vrrp): (Vec<_>, Vec<_>) =
            d.instances.iter().cloned().partition(|i| i.mode.is_bgp());
        self.engine.apply(&vrrp).await;
        // Only `announce: bgp` instances reach the speaker; without --bgp there are none
        // and it stays idle.
        self.speaker.apply(d.bgp.clone(), &routed).await;
        tracing::info!(instances = d.instances.len(), took = ?started.elapsed(), "desired state applied");
        self.ready.send_replace(true);
    }

    fn status(&mut self, st: &KubeStatus) {
        let m = &self.shared.metrics;
        m.set_kube("synced", i64::from(st.synced));
        m.set_kube("edge_nodes", st.edge_nodes.len() as i64);
        m.set_kube("instances", st.instances.len() as i64);
        m.set_kube("rejected_entries", st.rejected.len() as i64);
        m.set_kube("warnings", st.warnings.len() as i64);
        m.set_kube("load_balancers", st.load_balancers.len() as i64);
        m.set_kube(
            "load_balancers_without_vip",
            st.load_balancer_problems.len() as i64,
        );
        m.set_kube("watch_errors", st.watch_errors as i64);
        m.set_kube("rebuilds", st.rebuilds as i64);
        m.set_kube("last_rebuild_us", st.last_rebuild_us as i64);
        if st.allocator_lease.is_some() {
            // Only in LoadBalancer mode: the no-allocator alert sums it over the pods.
            m.set_kube("allocator", i64::from(st.status_writer));
            let pools: Vec<(String, u64, f64)> = st
                .pools
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        p.allocated,
                        p.free.parse().unwrap_or(f64::MAX),
                    )
                })
                .collect();
            m.set_pools(&pools);
        }
        self.instances = st.instances.clone();
        self.kube_status
            .send_replace(serde_json::to_value(st).unwrap_or_default());
    }

    fn transition(&mut self, t: &Transition) {
        tell_transition(&self.events, &self.node_name, t);
    }

    fn tick(&mut self) {
        self.shared.heartbeat.beat(self.shared.clock.now_ms());
        let m = &self.shared.metrics;
        let counts: Vec<(strangers::Key, u64)> = self
            .instances
            .iter()
            .flat_map(|i| ["ipv4", "ipv6"].map(|f| (i.clone(), f)))
            .map(|(instance, family)| {
                let labels = crate::metrics::DropLabels {
                    instance: instance.clone(),
                    family: family.into(),
                    reason: "not_a_peer".into(),
                };
                let n = m.dropped.get(&labels).map(|c| c.get()).unwrap_or(0);
                ((instance, family), n)
            })
            .collect();
        for note in self.strangers.observe(&counts, std::time::Instant::now()) {
            tracing::warn!("{note}");
            self.events
                .on_node(&self.node_name, Kind::Warning, "AdvertsNotFromPeers", note);
        }
        let nat = self.forwarder.nat.applied().borrow().clone();
        m.set_kube("nat_apply_failures", nat.total_failures as i64);
        m.set_kube(
            "nat_in_force",
            i64::from(nat.failures == 0 && nat.services.is_some()),
        );
    }

    async fn shutdown(self) {
        // Both at once: VRRP hands over while BGP withdraws and drains.
        tokio::join!(self.engine.shutdown(), self.speaker.shutdown());
        self.forwarder.remove().await;
    }
}

/// NAT rules and proxies, kept on every edge node so a new master forwards at once. NAT
/// is applied, retried and bounded by its keeper task; this only hands it the latest.
struct Forwarder {
    nat: edgevip_forward::nat::Keeper,
    proxies: edgevip_forward::proxy::Proxies,
    current: edgevip_forward::Spec,
}

impl Forwarder {
    fn new(
        metrics: edgevip_forward::proxy::ProxyMetrics,
        limits: edgevip_forward::proxy::Limits,
    ) -> Forwarder {
        Forwarder {
            nat: edgevip_forward::nat::Keeper::spawn(Default::default()),
            proxies: edgevip_forward::proxy::Proxies::with_limits(metrics, limits),
            current: Default::default(),
        }
    }

    async fn apply(&mut self, spec: &edgevip_forward::Spec) {
        self.nat.set(&spec.nat);
        if *spec == self.current {
            return;
        }
        if spec.nat.iter().any(|n| n.vip.is_ipv4())
            && std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .is_ok_and(|v| v.trim() == "0")
        {
            tracing::warn!(
                "net.ipv4.ip_forward is 0: NATed traffic to other nodes' endpoints is dropped"
            );
        }
        for e in self.proxies.update(&spec.proxy) {
            tracing::error!(error = %e, "proxy");
        }
        self.current = spec.clone();
    }

    async fn remove(self) {
        match self.nat.remove().await {
            Ok(()) | Err(edgevip_forward::nat::NatError::Missing(_)) => {}
            Err(e) => tracing::warn!(error = %e, "NAT table not removed"),
        }
    }
}

/// An Event on this node's Node object for every BGP session that comes up or goes down
/// (`BGPSessionUp`, `BGPSessionDown`), as FRR reports it.
fn tell_sessions(
    mut changes: tokio::sync::broadcast::Receiver<crate::bgp::PeerChange>,
    events: Events,
    node: String,
) {
    tokio::spawn(async move {
        loop {
            let c = match changes.recv().await {
                Ok(c) => c,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let (kind, reason) = if c.is_up() {
                (Kind::Normal, "BGPSessionUp")
            } else if c.is_down() {
                (Kind::Warning, "BGPSessionDown")
            } else {
                continue;
            };
            let bfd = c.bfd_to.as_deref().unwrap_or("off");
            let from = c.from.as_deref().unwrap_or("unknown");
            events.on_node(
                &node,
                kind,
                reason,
                format!("BGP peer {}: {from} -> {} (BFD {bfd})", c.peer, c.to),
            );
        }
    });
}

/// An Event on this node's Node object for every change into or out of master.
fn tell_transition(events: &Events, node: &str, t: &crate::engine::Transition) {
    if t.from != State::Master && t.to != State::Master {
        return;
    }
    let (kind, reason) = match t.to {
        State::Master => (Kind::Normal, "BecameMaster"),
        State::Fault => (Kind::Warning, "Fault"),
        _ => (Kind::Normal, "LeftMaster"),
    };
    events.on_node(
        node,
        kind,
        reason,
        format!(
            "instance {} ({}, VRID {}): {} -> {} ({})",
            t.instance, t.family, t.vrid, t.from, t.to, t.reason
        ),
    );
}

async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}
