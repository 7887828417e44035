//! `edgevip run --kubernetes`: the same engine, fed by the cluster instead of a file. The
//! controller publishes desired instances; the engine applies only what changed. Losing
//! the API server changes nothing here: the last desired state stays in force.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use edgevip_config::HealthCheck;
use edgevip_k8s::controller::{self, Options, Resolver};
use edgevip_k8s::desired::Settings;
use edgevip_k8s::events::{Events, Kind};
use tokio::sync::watch;
use vrrp::router::State;

use crate::cli::KubeArgs;
use crate::daemon::Base;
use crate::engine::Engine;

pub async fn run(args: KubeArgs) -> ExitCode {
    let Some(node_name) = args.node_name.clone().filter(|n| !n.is_empty()) else {
        eprintln!("edgevip: --node-name (or NODE_NAME) is required with --kubernetes");
        return ExitCode::from(2);
    };
    let Some((ns, name)) = args
        .services_configmap
        .as_deref()
        .and_then(|s| s.split_once('/'))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
    else {
        eprintln!(
            "edgevip: --services-configmap NAMESPACE/NAME is required with --kubernetes, got {:?}",
            args.services_configmap
        );
        return ExitCode::from(2);
    };
    let ingress_check = match ingress_check(&args.ingress_check) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgevip: --ingress-check: {e}");
            return ExitCode::from(2);
        }
    };
    let lb = if args.load_balancers {
        match edgevip_k8s::services::Pool::parse(&args.address_pool) {
            Ok(pool) => Some(edgevip_k8s::services::LbSettings {
                class: args.load_balancer_class.clone(),
                default_class: args.default_load_balancer_class,
                pool,
                vrid: args.lb_vrid,
            }),
            Err(e) => {
                eprintln!("edgevip: --address-pool: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    if lb.as_ref().is_some_and(|l| l.vrid == args.vrid) {
        eprintln!("edgevip: --lb-vrid and --vrid must differ ({})", args.vrid);
        return ExitCode::from(2);
    }
    let client = match client(&args).await {
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
    let netlink = shared.netlink.clone();
    let resolver: Resolver = Arc::new(move |addrs| {
        let netlink = netlink.clone();
        Box::pin(async move { netlink.interface_holding(&addrs).await.ok().flatten() })
    });
    let events = Events::new(client.clone(), &node_name);
    let opts = Options {
        settings: Settings {
            node_name: node_name.clone(),
            vrid: args.vrid,
            interface: args.interface.clone(),
            unicast: args.unicast,
            advert_interval: args.advert_interval,
            preempt: args.preempt,
            ingress_check,
            lb,
            forwarding: args.forwarding,
            proxy_header: match args.proxy_protocol {
                crate::cli::ProxyProtocol::V1 => edgevip_forward::ProxyHeader::V1,
                crate::cli::ProxyProtocol::V2 => edgevip_forward::ProxyHeader::V2,
                crate::cli::ProxyProtocol::None => edgevip_forward::ProxyHeader::None,
            },
        },
        configmap_namespace: ns.into(),
        configmap_name: name.into(),
        node_selector: args.node_selector.clone(),
        release_grace: args.release_grace,
    };
    let mut handle = controller::start(client, opts, resolver, Some(events.clone()));

    let (ready_tx, ready) = watch::channel(false);
    let (kube_tx, kube_rx) = watch::channel(serde_json::Value::Null);
    if let Err(code) = base.serve_api(args.api_listen, ready, Some(kube_rx)).await {
        return code;
    }
    let mut engine = Engine::new(shared.clone());
    let mut forwarder = Forwarder::new(shared.metrics.proxy.clone());
    let mut transitions = shared.transitions.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tracing::info!(node = %node_name, configmap = %format!("{ns}/{name}"), selector = %args.node_selector, "edgevip running in Kubernetes mode");
    loop {
        tokio::select! {
            r = handle.desired.changed() => {
                if r.is_err() {
                    // The controller ended: keep serving the last state until stopped.
                    tracing::error!("controller stopped; the last desired state stays in force");
                    std::future::pending::<()>().await;
                }
                let desired = handle.desired.borrow_and_update().clone();
                if let Some(d) = desired {
                    forwarder.apply(&d.forward).await;
                    let started = std::time::Instant::now();
                    engine.apply(&d.instances).await;
                    tracing::info!(instances = d.instances.len(), took = ?started.elapsed(), "desired state applied");
                    ready_tx.send_replace(true);
                }
            }
            r = handle.status.changed() => {
                if r.is_ok() {
                    let st = handle.status.borrow_and_update().clone();
                    let m = &shared.metrics;
                    m.set_kube("synced", i64::from(st.synced));
                    m.set_kube("edge_nodes", st.edge_nodes.len() as i64);
                    m.set_kube("instances", st.instances.len() as i64);
                    m.set_kube("rejected_entries", st.rejected.len() as i64);
                    m.set_kube("warnings", st.warnings.len() as i64);
                    m.set_kube("load_balancers", st.load_balancers.len() as i64);
                    m.set_kube("watch_errors", st.watch_errors as i64);
                    m.set_kube("rebuilds", st.rebuilds as i64);
                    m.set_kube("last_rebuild_us", st.last_rebuild_us as i64);
                    kube_tx.send_replace(serde_json::to_value(&st).unwrap_or_default());
                }
            }
            t = transitions.recv() => {
                if let Ok(t) = t {
                    tell_transition(&events, &node_name, &t);
                }
            }
            _ = base.hup.recv() => tracing::info!("SIGHUP ignored in Kubernetes mode: the cluster is the configuration"),
            _ = base.term.recv() => break,
            _ = base.int.recv() => break,
            _ = tick.tick() => shared.heartbeat.beat(shared.clock.now_ms()),
        }
    }
    tracing::info!("shutting down: handing over VIPs");
    engine.shutdown().await;
    forwarder.remove().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// NAT rules and proxies, kept on every edge node so a new master forwards at once.
struct Forwarder {
    nat: edgevip_forward::nat::Nat,
    proxies: edgevip_forward::proxy::Proxies,
    current: edgevip_forward::Spec,
}

impl Forwarder {
    fn new(metrics: edgevip_forward::proxy::ProxyMetrics) -> Forwarder {
        Forwarder {
            nat: Default::default(),
            proxies: edgevip_forward::proxy::Proxies::new(metrics),
            current: Default::default(),
        }
    }

    async fn apply(&mut self, spec: &edgevip_forward::Spec) {
        if *spec == self.current {
            return;
        }
        let started = std::time::Instant::now();
        if !spec.nat.is_empty() || !self.current.nat.is_empty() {
            match self.nat.apply(&spec.nat).await {
                Ok(true) => {
                    tracing::info!(services = spec.nat.len(), took = ?started.elapsed(), "NAT rules replaced")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "NAT rules not applied: keeping the previous ones")
                }
            }
            if spec.nat.iter().any(|n| n.vip.is_ipv4())
                && std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                    .is_ok_and(|v| v.trim() == "0")
            {
                tracing::warn!(
                    "net.ipv4.ip_forward is 0: NATed traffic to other nodes' endpoints is dropped"
                );
            }
        }
        for e in self.proxies.update(&spec.proxy) {
            tracing::error!(error = %e, "proxy");
        }
        self.current = spec.clone();
    }

    async fn remove(&mut self) {
        if !self.current.nat.is_empty()
            && let Err(e) = self.nat.remove().await
        {
            tracing::warn!(error = %e, "NAT table not removed");
        }
    }
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

fn ingress_check(spec: &str) -> Result<Option<HealthCheck>, String> {
    if spec == "none" || spec.is_empty() {
        return Ok(None);
    }
    if !spec.starts_with("http://") {
        return Err(format!("{spec:?} is neither an http:// URL nor `none`"));
    }
    Ok(Some(HealthCheck::http("ingress", spec)))
}

async fn client(args: &KubeArgs) -> Result<kube::Client, String> {
    let config = match &args.kubeconfig {
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
