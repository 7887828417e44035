//! `edgevip run`: loads the config, starts the engine and the API, follows signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use edgevip_netio::Netlink;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::api::{self, ApiState};
use crate::bgp::Speaker;
use crate::engine::{Clock, Engine, Heartbeat, Links, Shared};
use crate::metrics::{Metrics, ReloadLabels};
use crate::status::Board;

/// What both run modes share: netlink, link state, metrics, status board, signals.
pub(crate) struct Base {
    pub shared: Shared,
    pub hup: Signal,
    pub term: Signal,
    pub int: Signal,
}

impl Base {
    pub async fn open(interfaces: &[String]) -> Result<Base, ExitCode> {
        let netlink = Netlink::new().map_err(|e| {
            tracing::error!(error = %e, "netlink unavailable");
            ExitCode::FAILURE
        })?;
        let links = Links::start(&netlink, interfaces).await.map_err(|e| {
            tracing::error!(error = %e, "cannot follow link state");
            ExitCode::FAILURE
        })?;
        let shared = Shared {
            netlink,
            metrics: Metrics::new(),
            board: Board::default(),
            clock: Clock::new(),
            links,
            heartbeat: Heartbeat::default(),
            receivers: Default::default(),
            transitions: tokio::sync::broadcast::channel(256).0,
        };
        match (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(hup), Ok(term), Ok(int)) => Ok(Base {
                shared,
                hup,
                term,
                int,
            }),
            _ => {
                tracing::error!("cannot install signal handlers");
                Err(ExitCode::FAILURE)
            }
        }
    }

    /// `detail`: serve `/status` on this listener too.
    pub fn serve_api(
        &self,
        listen: SocketAddr,
        detail: bool,
        max_connections: usize,
        ready: watch::Receiver<bool>,
        kubernetes: Option<watch::Receiver<serde_json::Value>>,
    ) -> Result<(), ExitCode> {
        let state = ApiState {
            board: self.shared.board.clone(),
            metrics: self.shared.metrics.clone(),
            heartbeat: self.shared.heartbeat.clone(),
            clock: self.shared.clock,
            ready,
            kubernetes,
        };
        let limits = api::Limits {
            max_connections,
            ..Default::default()
        };
        api::serve(listen, state, detail, limits)
            .map(drop)
            .map_err(|e| {
                tracing::error!(%listen, error = %e, "cannot serve the API");
                ExitCode::FAILURE
            })
    }
}

/// Where standalone mode's config comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `run --config FILE`: read again on SIGHUP.
    File(PathBuf),
    /// `run --config-env VAR`: the YAML in an environment variable (a static Pod's config
    /// travels in its manifest). A SIGHUP reads it again, and finds what it found.
    Env(String),
}

impl ConfigSource {
    pub fn load(&self) -> Result<edgevip_config::Config, edgevip_config::ConfigErrors> {
        match self {
            ConfigSource::File(path) => edgevip_config::load(path),
            ConfigSource::Env(var) => match std::env::var(var) {
                Ok(yaml) => edgevip_config::parse(&yaml),
                Err(e) => Err(edgevip_config::ConfigErrors(vec![
                    edgevip_config::FieldError {
                        path: format!("${var}"),
                        message: e.to_string(),
                    },
                ])),
            },
        }
    }
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Env(var) => write!(f, "${var}"),
        }
    }
}

pub async fn run(source: ConfigSource) -> ExitCode {
    let cfg = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{source}: invalid, not starting\n{e}");
            return ExitCode::from(2);
        }
    };
    let vrrp = vrrp_instances(&cfg.instances);
    let mut names: Vec<String> = vrrp.iter().map(|i| i.interface.clone()).collect();
    names.extend(
        vrrp.iter()
            .flat_map(|i| i.track_interfaces.iter().map(|t| t.name.clone())),
    );
    let mut base = match Base::open(&names).await {
        Ok(b) => b,
        Err(code) => return code,
    };
    let shared = base.shared.clone();
    shared.metrics.reload_ok.set(1);
    let (ready_tx, ready) = watch::channel(false);
    if let Some(api) = &cfg.api
        && let Err(code) = base.serve_api(api.listen, true, 256, ready, None)
    {
        return code;
    }
    let mut engine = Engine::new(shared.clone());
    engine.apply(&vrrp).await;
    let speaker = Speaker::start(
        shared.netlink.clone(),
        shared.metrics.clone(),
        shared.board.clone(),
    );
    speaker.apply(cfg.bgp.clone(), &cfg.instances).await;
    ready_tx.send_replace(true);
    tracing::info!(config = %source, instances = cfg.instances.len(), "edgevip running");
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            // A reload in progress never holds SIGTERM back: the stop wins, and the
            // shutdown below hands over whatever the reload had started.
            _ = base.hup.recv() => {
                let stop = tokio::select! {
                    _ = reload(&source, &mut engine, &speaker, &shared.metrics) => false,
                    _ = base.term.recv() => true,
                    _ = base.int.recv() => true,
                };
                if stop {
                    tracing::warn!("stop signal during a reload: reload abandoned");
                    break;
                }
            }
            _ = base.term.recv() => break,
            _ = base.int.recv() => break,
            // Keeps /healthz green while no instance is configured.
            _ = tick.tick() => shared.heartbeat.beat(shared.clock.now_ms()),
        }
    }
    tracing::info!("shutting down: handing over VIPs");
    tokio::join!(engine.shutdown(), speaker.shutdown());
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The instances the VRRP engine runs (`announce: arp`); the others are the BGP speaker's.
fn vrrp_instances(instances: &[edgevip_config::Instance]) -> Vec<edgevip_config::Instance> {
    instances
        .iter()
        .filter(|i| !i.mode.is_bgp())
        .cloned()
        .collect()
}

async fn reload(source: &ConfigSource, engine: &mut Engine, speaker: &Speaker, metrics: &Metrics) {
    // Read off the event loop: a config on a hung mount (or a FIFO) must not freeze VRRP,
    // nor keep SIGTERM from being handled.
    let s = source.clone();
    let loaded = match tokio::task::spawn_blocking(move || s.load()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(config = %source, error = %e, "reload failed");
            return;
        }
    };
    match loaded {
        Ok(cfg) => {
            tracing::info!(config = %source, "reloading");
            engine.apply(&vrrp_instances(&cfg.instances)).await;
            speaker.apply(cfg.bgp.clone(), &cfg.instances).await;
            metrics.reload_ok.set(1);
            metrics
                .reloads
                .get_or_create(&ReloadLabels {
                    result: "ok".into(),
                })
                .inc();
        }
        Err(e) => {
            tracing::error!(config = %source, errors = %e, "reload rejected: keeping the running config");
            metrics.reload_ok.set(0);
            metrics
                .reloads
                .get_or_create(&ReloadLabels {
                    result: "invalid".into(),
                })
                .inc();
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (container runtimes often start at
/// 1,024) and returns the soft limit in force. Connection caps are derived from it, so
/// the API and the proxy stop short of it and VRRP always finds a descriptor.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// The soft RLIMIT_NOFILE in force.
pub fn fd_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}
