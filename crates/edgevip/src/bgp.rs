//! The BGP announcement mode (`announce: bgp`): no VRRP. Each such instance's VIPs sit on
//! `lo`, and FRR announces them as host routes while every health check of the instance
//! passes. edgevip decides what to announce; FRR (driven through `edgevip-frr`) speaks BGP
//! and BFD.
//!
//! ```text
//!  Speaker::apply(bgp, instances) ──Cmd──►┌──────────── speaker task ────────────┐
//!  Speaker::shutdown()             ──Cmd──►│ select! { cmd, checks changed, tick } │
//!  health checks (one Checks per   ─watch─►│ routes = VIPs of eligible instances    │
//!  instance, forwarded as a ping)          │ render ─► frr-reload (blocking pool)   │
//!                                          │   only when the text changed; retried  │
//!                                          │   every second after a failure         │
//!                                          └────────────────────────────────────────┘
//! ```
//!
//! Stop: render without routes, apply, wait (bounded) until FRR advertises nothing to any
//! peer, keep the VIPs on `lo` for `drain_time` (connections the routers still send), then
//! remove them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use edgevip_config::{AnnounceMode, Bgp, Instance, Vip};
use edgevip_frr::vtysh::Frr;
use edgevip_frr::{Route, network_delta, render};
use edgevip_netio::Netlink;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::health::{self, Checks};
use crate::metrics::{InstanceLabels, Metrics, PeerLabels, ReloadLabels};
use crate::status::{BgpInstanceStatus, BgpPeerStatus, BgpStatus, Board};

/// How often FRR's state is read back for `/status` and the metrics.
pub const STATE_INTERVAL: Duration = Duration::from_secs(3);

/// How long a stop waits for FRR to stop advertising before it gives up waiting.
pub const WITHDRAW_BOUND: Duration = Duration::from_secs(10);

enum Cmd {
    Apply(Option<Bgp>, Vec<Instance>),
    Shutdown(oneshot::Sender<()>),
}

/// The handle of the speaker task.
pub struct Speaker {
    tx: mpsc::Sender<Cmd>,
    task: Option<JoinHandle<()>>,
}

impl Speaker {
    pub fn start(netlink: Netlink, metrics: Metrics, board: Board) -> Speaker {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(run(netlink, metrics, board, rx));
        Speaker {
            tx,
            task: Some(task),
        }
    }

    /// The desired state: the `bgp:` section and the `announce: bgp` instances (others are
    /// ignored here).
    pub async fn apply(&self, bgp: Option<Bgp>, instances: &[Instance]) {
        let mine = instances
            .iter()
            .filter(|i| i.mode.is_bgp())
            .cloned()
            .collect();
        let _ = self.tx.send(Cmd::Apply(bgp, mine)).await;
    }

    /// Withdraws every route, waits for FRR to stop advertising, drains, removes the VIPs.
    pub async fn shutdown(mut self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

struct Announced {
    cfg: Instance,
    checks: Checks,
    forward: JoinHandle<()>,
}

impl Drop for Announced {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

struct State {
    netlink: Netlink,
    metrics: Metrics,
    board: Board,
    /// The last failure applying or reading FRR, for `/status`.
    error: Option<String>,
    peers: Vec<BgpPeerStatus>,
    lo: Option<u32>,
    bgp: Option<Bgp>,
    instances: BTreeMap<String, Announced>,
    /// The text FRR last accepted; `None` after a failure (retry).
    applied: Option<String>,
    ping: mpsc::Sender<()>,
}

async fn run(netlink: Netlink, metrics: Metrics, board: Board, mut rx: mpsc::Receiver<Cmd>) {
    let (ping, mut pinged) = mpsc::channel(64);
    let mut st = State {
        netlink,
        metrics,
        board,
        error: None,
        peers: Vec::new(),
        lo: None,
        bgp: None,
        instances: BTreeMap::new(),
        applied: None,
        ping,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state_tick = tokio::time::interval(STATE_INTERVAL);
    state_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Apply(bgp, instances)) => st.update(bgp, instances).await,
                Some(Cmd::Shutdown(done)) => {
                    st.stop().await;
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
            Some(()) = pinged.recv() => {
                // Drain the burst: one render for many verdicts.
                while pinged.try_recv().is_ok() {}
                st.sync().await;
                st.publish();
            }
            _ = tick.tick() => {
                if st.applied.is_none() && st.bgp.is_some() {
                    st.sync().await;
                }
            }
            _ = state_tick.tick() => st.read_back().await,
        }
    }
}

impl State {
    async fn update(&mut self, bgp: Option<Bgp>, instances: Vec<Instance>) {
        if self.lo.is_none() && !instances.is_empty() {
            match self.netlink.link_by_name("lo").await {
                Ok(l) => self.lo = Some(l.index),
                Err(e) => tracing::error!(error = %e, "bgp: cannot find lo"),
            }
        }
        let wanted: Vec<String> = instances.iter().map(|i| i.name.clone()).collect();
        let gone: Vec<String> = self
            .instances
            .keys()
            .filter(|n| !wanted.contains(n))
            .cloned()
            .collect();
        let mut removed_vips: Vec<Vip> = Vec::new();
        for name in gone {
            if let Some(a) = self.instances.remove(&name) {
                tracing::info!(instance = %name, "bgp: instance removed, withdrawing");
                let _ = self.metrics.bgp_announced.remove(&InstanceLabels {
                    instance: name.clone(),
                });
                removed_vips.extend(a.cfg.vips.iter().copied());
            }
        }
        for cfg in instances {
            match self.instances.get_mut(&cfg.name) {
                Some(a) if a.cfg == cfg => {}
                Some(a) => {
                    let dropped: Vec<Vip> = a
                        .cfg
                        .vips
                        .iter()
                        .filter(|v| !cfg.vips.contains(v))
                        .copied()
                        .collect();
                    removed_vips.extend(dropped);
                    a.checks.update(&cfg.health_checks);
                    let vips = cfg.vips.clone();
                    a.cfg = cfg;
                    self.add_vips(&vips).await;
                }
                None => {
                    self.add_vips(&cfg.vips).await;
                    let checks = Checks::start(&cfg.name, &cfg.health_checks, self.metrics.clone());
                    let mut verdicts = checks.subscribe();
                    let ping = self.ping.clone();
                    let forward = tokio::spawn(async move {
                        while verdicts.changed().await.is_ok() {
                            if ping.send(()).await.is_err() {
                                return;
                            }
                        }
                    });
                    tracing::info!(instance = %cfg.name, vips = ?cfg.vips.iter().map(|v| v.addr).collect::<Vec<_>>(), "bgp: instance started");
                    self.instances.insert(
                        cfg.name.clone(),
                        Announced {
                            cfg,
                            checks,
                            forward,
                        },
                    );
                }
            }
        }
        self.bgp = bgp;
        // Withdraw before the addresses go, so no router sends to a node without them.
        self.sync().await;
        self.publish();
        if !removed_vips.is_empty() {
            self.del_vips(&removed_vips).await;
        }
    }

    /// Routes of the instances whose checks all pass now.
    fn routes(&self) -> Vec<Route> {
        let Some(bgp) = &self.bgp else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for a in self.instances.values() {
            let (_, fault) = health::weight_and_fault(&a.cfg.health_checks, &a.checks.current());
            if fault {
                continue;
            }
            let AnnounceMode::Bgp(attrs) = &a.cfg.mode else {
                continue;
            };
            let attrs = attrs.or(&bgp.defaults);
            out.extend(a.cfg.vips.iter().map(|v| Route {
                addr: v.addr,
                attrs: attrs.clone(),
            }));
        }
        out
    }

    /// Renders the routes of now and applies the text if it changed.
    async fn sync(&mut self) {
        let Some(bgp) = self.bgp.clone() else {
            return;
        };
        let routes = self.routes();
        let text = render(&bgp, &routes);
        if self.applied.as_deref() == Some(text.as_str()) {
            return;
        }
        let announced: Vec<IpAddr> = routes.iter().map(|r| r.addr).collect();
        let delta = self
            .applied
            .as_deref()
            .and_then(|old| network_delta(bgp.asn, old, &text));
        let result = match apply(&bgp, text.clone(), delta).await {
            Ok(took) => {
                tracing::info!(announced = ?announced, took_ms = took.as_millis() as u64, "bgp: FRR configuration applied");
                self.applied = Some(text);
                self.error = None;
                "ok"
            }
            Err(e) => {
                tracing::error!(error = %e, "bgp: applying FRR configuration failed; retrying in 1s");
                self.applied = None;
                self.error = Some(e);
                "failed"
            }
        };
        self.metrics
            .bgp_applies
            .get_or_create(&ReloadLabels {
                result: result.into(),
            })
            .inc();
        self.publish();
    }

    /// Reads sessions, BFD and advertised prefixes from FRR (off the event loop).
    async fn read_back(&mut self) {
        let Some(bgp) = &self.bgp else {
            return;
        };
        let frr = Frr::for_config(bgp);
        let peers: Vec<IpAddr> = bgp.peers.iter().map(|p| p.address).collect();
        match tokio::task::spawn_blocking(move || frr.speaker(&peers)).await {
            Ok(Ok(s)) => {
                self.peers = s
                    .peers
                    .iter()
                    .map(|p| BgpPeerStatus {
                        address: p.peer.to_string(),
                        state: p
                            .session
                            .as_ref()
                            .map_or_else(|| "unknown".into(), |s| s.state.clone()),
                        uptime_ms: p
                            .session
                            .as_ref()
                            .and_then(|s| s.uptime)
                            .map(|u| u.as_millis() as u64),
                        bfd: p.bfd.as_ref().map(|b| b.status.clone()),
                        advertised: p.advertised.clone(),
                    })
                    .collect();
                if self.applied.is_some() {
                    self.error = None;
                }
            }
            Ok(Err(e)) => self.error = Some(format!("reading FRR's state: {e}")),
            Err(e) => self.error = Some(e.to_string()),
        }
        for p in &self.peers {
            let l = PeerLabels {
                peer: p.address.clone(),
            };
            self.metrics
                .bgp_session_up
                .get_or_create(&l)
                .set(i64::from(p.state == "Established"));
            self.metrics
                .bgp_bfd_up
                .get_or_create(&l)
                .set(i64::from(p.bfd.as_deref() == Some("up")));
            self.metrics
                .bgp_advertised
                .get_or_create(&l)
                .set(p.advertised.len() as i64);
        }
        self.publish();
    }

    /// The board's `bgp` entry and the per-instance gauge, from the state of now.
    fn publish(&self) {
        if self.bgp.is_none() && self.instances.is_empty() {
            self.board.set_bgp(None);
            return;
        }
        let instances: Vec<BgpInstanceStatus> = self
            .instances
            .values()
            .map(|a| {
                let verdicts = a.checks.current();
                let failing_checks: Vec<String> = a
                    .cfg
                    .health_checks
                    .iter()
                    .filter(|c| verdicts.get(&c.name) != Some(&true))
                    .map(|c| c.name.clone())
                    .collect();
                BgpInstanceStatus {
                    name: a.cfg.name.clone(),
                    vips: a.cfg.vips.iter().map(|v| v.addr.to_string()).collect(),
                    announced: failing_checks.is_empty() && self.applied.is_some(),
                    failing_checks,
                }
            })
            .collect();
        for i in &instances {
            self.metrics
                .bgp_announced
                .get_or_create(&InstanceLabels {
                    instance: i.name.clone(),
                })
                .set(i64::from(i.announced));
        }
        self.board.set_bgp(Some(BgpStatus {
            announced: self.routes().iter().map(Route::prefix).collect(),
            instances,
            peers: self.peers.clone(),
            error: self.error.clone(),
        }));
    }

    async fn stop(&mut self) {
        let Some(bgp) = self.bgp.clone() else {
            return;
        };
        tracing::info!("bgp: stopping: withdrawing every route");
        let vips: Vec<Vip> = self
            .instances
            .values()
            .flat_map(|a| a.cfg.vips.iter().copied())
            .collect();
        self.instances.clear();
        self.sync().await;
        let peers: Vec<IpAddr> = bgp.peers.iter().map(|p| p.address).collect();
        let frr = Frr::for_config(&bgp);
        let started = tokio::time::Instant::now();
        let mut quiet = false;
        while started.elapsed() < WITHDRAW_BOUND {
            let f = frr.clone();
            let p = peers.clone();
            let s = tokio::task::spawn_blocking(move || f.speaker(&p)).await;
            if let Ok(Ok(s)) = s
                && s.advertises_nothing()
            {
                quiet = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if quiet {
            tracing::info!(took_ms = started.elapsed().as_millis() as u64, drain = ?bgp.drain_time, "bgp: no peer is advertised a VIP any more; draining");
        } else {
            tracing::warn!(bound = ?WITHDRAW_BOUND, "bgp: FRR still advertises after the bound; stopping anyway");
        }
        tokio::time::sleep(bgp.drain_time).await;
        self.del_vips(&vips).await;
    }

    async fn add_vips(&self, vips: &[Vip]) {
        let Some(lo) = self.lo else { return };
        for v in vips {
            if let Err(e) = self.netlink.add_vip(lo, v.addr, v.prefix_len).await {
                tracing::error!(vip = %v.addr, error = %e, "bgp: cannot add the VIP to lo");
            }
        }
    }

    async fn del_vips(&self, vips: &[Vip]) {
        let Some(lo) = self.lo else { return };
        for v in vips {
            if let Err(e) = self.netlink.del_vip(lo, v.addr, v.prefix_len).await {
                tracing::error!(vip = %v.addr, error = %e, "bgp: cannot remove the VIP from lo");
            }
        }
    }
}

/// On the blocking pool (child processes, each up to the adapter's deadline): the
/// `network` lines alone through vtysh when that is all that changed, else (or when that
/// fails) the whole file through frr-reload.
async fn apply(bgp: &Bgp, text: String, delta: Option<Vec<String>>) -> Result<Duration, String> {
    let frr = Frr::for_config(bgp);
    let started = std::time::Instant::now();
    let done = tokio::task::spawn_blocking(move || {
        if let Some(cmds) = delta {
            match frr.apply_commands(&text, &cmds) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "bgp: vtysh fast path failed; frr-reload"),
            }
        }
        frr.apply(&text)
    })
    .await;
    match done {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
