//! `edgevip run`: loads the config, starts the engine and the API, follows signals.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use edgevip_netio::Netlink;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{self, ApiState, Heartbeat};
use crate::engine::{Clock, Engine, Links, Shared};
use crate::metrics::{Metrics, ReloadLabels};
use crate::status::Board;

pub async fn run(path: PathBuf) -> ExitCode {
    let cfg = match edgevip_config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid, not starting\n{e}", path.display());
            return ExitCode::from(2);
        }
    };
    let netlink = match Netlink::new() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "netlink unavailable");
            return ExitCode::FAILURE;
        }
    };
    let mut names: Vec<String> = cfg.instances.iter().map(|i| i.interface.clone()).collect();
    names.extend(
        cfg.instances
            .iter()
            .flat_map(|i| i.track_interfaces.iter().map(|t| t.name.clone())),
    );
    let links = match Links::start(&netlink, &names).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot follow link state");
            return ExitCode::FAILURE;
        }
    };
    let shared = Shared {
        netlink,
        metrics: Metrics::new(),
        board: Board::default(),
        clock: Clock::new(),
        links,
        heartbeat: Heartbeat::default(),
    };
    let (mut hup, mut term, mut int) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(h), Ok(t), Ok(i)) => (h, t, i),
        _ => {
            tracing::error!("cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    if let Some(api) = &cfg.api {
        let state = ApiState {
            board: shared.board.clone(),
            metrics: shared.metrics.clone(),
            heartbeat: shared.heartbeat.clone(),
            clock: shared.clock,
        };
        if let Err(e) = api::serve(api.listen, state).await {
            tracing::error!(listen = %api.listen, error = %e, "cannot serve the API");
            return ExitCode::FAILURE;
        }
    }
    let mut engine = Engine::new(shared.clone());
    engine.apply(&cfg).await;
    tracing::info!(config = %path.display(), instances = cfg.instances.len(), "edgevip running");
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&path, &mut engine, &shared.metrics).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
            // Keeps /healthz green while no instance is configured.
            _ = tick.tick() => shared.heartbeat.beat(shared.clock.now_ms()),
        }
    }
    tracing::info!("shutting down: handing over VIPs");
    engine.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn reload(path: &Path, engine: &mut Engine, metrics: &Metrics) {
    match edgevip_config::load(path) {
        Ok(cfg) => {
            tracing::info!(config = %path.display(), "reloading");
            engine.apply(&cfg).await;
            metrics
                .reloads
                .get_or_create(&ReloadLabels {
                    result: "ok".into(),
                })
                .inc();
        }
        Err(e) => {
            tracing::error!(config = %path.display(), errors = %e, "reload rejected: keeping the running config");
            metrics
                .reloads
                .get_or_create(&ReloadLabels {
                    result: "invalid".into(),
                })
                .inc();
        }
    }
}
