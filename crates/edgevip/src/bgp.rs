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
//! VIPs on `lo` are recorded in a file ([`lo_record`]) so a killed run's are removed at
//! the next start, and an `arp edgevip_bgp` nftables table ([`arp_guard`]) stops the
//! node answering ARP for them on its segments. FRR's state is read back every 3 s (1 s
//! while a session is down); session and BFD transitions go to [`Speaker::subscribe`].
//!
//! Stop: render without routes, apply, wait (bounded) until FRR advertises nothing to any
//! peer, keep the VIPs on `lo` for `drain_time` (connections the routers still send), then
//! remove them.

mod lo_record;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use edgevip_config::{AnnounceMode, Bgp, Instance, Vip};
use edgevip_forward::arp_guard;
use edgevip_forward::nat::{NatError, Nft};
use edgevip_frr::vtysh::Frr;
use edgevip_frr::{Route, network_delta, render};
use edgevip_netio::Netlink;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::health::{self, CheckMap, Checks};
use crate::metrics::{InstanceLabels, Metrics, PeerLabels, ReloadLabels};
use crate::status::{BgpInstanceStatus, BgpPeerStatus, BgpStatus, Board};

/// How often FRR's state is read back for `/status` and the metrics while every session
/// is Established.
pub const STATE_INTERVAL: Duration = Duration::from_secs(3);

/// How often while a session is not Established (or none was read yet). A read costs a
/// few vtysh processes, too much to do every second for ever on a node shared with the
/// ingress, but while a session is coming up the transition is what readiness, `/status`
/// and the `BGPSessionUp` Event wait for: 1 s bounds that wait at about 1 s instead of 3 s.
/// Failures need no faster reads: BFD at the router detects them, edgevip only reports.
pub const STATE_INTERVAL_CONVERGING: Duration = Duration::from_secs(1);

/// One transition of a peer's BGP session or BFD state between two reads of FRR's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChange {
    /// The peer's address, as in `/status` `bgp.peers[].address`.
    pub peer: String,
    /// bgpd's state at the previous read (`None`: the peer was not known then).
    pub from: Option<String>,
    /// bgpd's state now (`Established`, `Active`, `Idle`, …, or `unknown`).
    pub to: String,
    /// BFD's status at the previous read (`None`: no BFD session or unknown peer).
    pub bfd_from: Option<String>,
    /// BFD's status now (`up`, `down`, `init`, …; `None`: no BFD session).
    pub bfd_to: Option<String>,
}

impl PeerChange {
    /// The session became Established.
    pub fn is_up(&self) -> bool {
        self.to == ESTABLISHED && self.from.as_deref() != Some(ESTABLISHED)
    }

    /// The session left Established.
    pub fn is_down(&self) -> bool {
        self.from.as_deref() == Some(ESTABLISHED) && self.to != ESTABLISHED
    }
}

const ESTABLISHED: &str = "Established";

/// The transitions from `old` to `new` (pure): a peer whose session state or BFD status
/// differs, or that appears in a known state (not `unknown`). Peers that disappear (removed
/// from the config) yield nothing.
pub fn peer_changes(old: &[BgpPeerStatus], new: &[BgpPeerStatus]) -> Vec<PeerChange> {
    new.iter()
        .filter_map(|n| {
            let o = old.iter().find(|o| o.address == n.address);
            let from = o.map(|o| o.state.clone());
            let bfd_from = o.and_then(|o| o.bfd.clone());
            let changed = match o {
                Some(o) => o.state != n.state || o.bfd != n.bfd,
                None => n.state != "unknown" || n.bfd.is_some(),
            };
            changed.then(|| PeerChange {
                peer: n.address.clone(),
                from,
                to: n.state.clone(),
                bfd_from,
                bfd_to: n.bfd.clone(),
            })
        })
        .collect()
}

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
    changes: broadcast::Sender<PeerChange>,
}

impl Speaker {
    pub fn start(netlink: Netlink, metrics: Metrics, board: Board) -> Speaker {
        let (tx, rx) = mpsc::channel(16);
        let (changes, _) = broadcast::channel(64);
        let task = tokio::spawn(run(netlink, metrics, board, rx, changes.clone()));
        Speaker {
            tx,
            task: Some(task),
            changes,
        }
    }

    /// BGP session and BFD transitions, as read back from FRR (every
    /// [`STATE_INTERVAL`], [`STATE_INTERVAL_CONVERGING`] while a session is down). A slow
    /// receiver loses the oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<PeerChange> {
        self.changes.subscribe()
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
    changes: broadcast::Sender<PeerChange>,
    /// The file recording the VIPs put on `lo` ([`lo_record`]).
    record: PathBuf,
    /// What the record holds (`None`: unknown or refused, rewrite it).
    recorded: Option<BTreeSet<lo_record::Entry>>,
    /// The record of an earlier run was looked at (first update).
    swept: bool,
    /// The IPv4 VIPs the `arp edgevip_bgp` table last dropped ARP requests for (`None`:
    /// unknown or failed, apply again).
    guarded: Option<Vec<Ipv4Addr>>,
}

async fn run(
    netlink: Netlink,
    metrics: Metrics,
    board: Board,
    mut rx: mpsc::Receiver<Cmd>,
    changes: broadcast::Sender<PeerChange>,
) {
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
        changes,
        record: lo_record::path(),
        recorded: None,
        swept: false,
        guarded: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_read = tokio::time::Instant::now();
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
                if st.guarded.is_none() {
                    st.guard(&[]).await;
                }
            }
            _ = tokio::time::sleep_until(next_read) => {
                st.read_back().await;
                next_read = tokio::time::Instant::now() + st.read_interval();
            }
        }
    }
}

impl State {
    async fn update(&mut self, bgp: Option<Bgp>, instances: Vec<Instance>) {
        if self.lo.is_none() && (!instances.is_empty() || !self.swept) {
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
        if !self.swept {
            self.swept = true;
            let wanted: BTreeSet<lo_record::Entry> = instances
                .iter()
                .flat_map(|i| i.vips.iter().map(|v| (v.addr, v.prefix_len)))
                .collect();
            removed_vips.extend(self.stale_vips(&wanted).await);
        }
        let mut to_add: Vec<Vip> = Vec::new();
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
                    to_add.extend(cfg.vips.iter().copied());
                    a.cfg = cfg;
                }
                None => {
                    to_add.extend(cfg.vips.iter().copied());
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
        // Recorded before they are added, so a crash in between leaves no unrecorded VIP;
        // and no ARP for them from the moment they are on lo.
        self.record(&removed_vips);
        self.guard(&removed_vips).await;
        self.add_vips(&to_add).await;
        self.bgp = bgp;
        // Withdraw before the addresses go, so no router sends to a node without them.
        self.sync().await;
        self.publish();
        if !removed_vips.is_empty() {
            self.del_vips(&removed_vips).await;
        }
        self.record(&[]);
        self.guard(&[]).await;
    }

    /// Keeps the `arp edgevip_bgp` table dropping ARP requests for the IPv4 VIPs on lo (the
    /// instances' plus `extra`, about to be removed); removes it when there are none.
    async fn guard(&mut self, extra: &[Vip]) {
        let mut want: Vec<Ipv4Addr> = self
            .instances
            .values()
            .flat_map(|a| a.cfg.vips.iter())
            .chain(extra)
            .filter_map(|v| match v.addr {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
            .collect();
        want.sort();
        want.dedup();
        if self.guarded.as_ref() == Some(&want) {
            return;
        }
        match Nft::default().run(&arp_guard::ruleset(&want)).await {
            Ok(()) => self.guarded = Some(want),
            // Nothing to guard and no nft: there is no table of ours either.
            Err(NatError::Missing(_)) if want.is_empty() => self.guarded = Some(want),
            // Nothing to guard: a table a killed run left stays (it only drops ARP for
            // addresses no longer on lo); not worth an error every second.
            Err(e) if want.is_empty() => {
                tracing::warn!(error = %e, "bgp: cannot remove the ARP table of VIPs on lo");
                self.guarded = Some(want);
            }
            Err(e) => {
                tracing::error!(error = %e, vips = ?want, "bgp: cannot install the table that stops ARP replies for VIPs on lo; retrying in 1s");
                self.guarded = None;
            }
        }
    }

    /// The VIPs an earlier run recorded, that are on `lo` now and not wanted any more.
    async fn stale_vips(&mut self, wanted: &BTreeSet<lo_record::Entry>) -> Vec<Vip> {
        let recorded = match lo_record::read(&self.record) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(file = %self.record.display(), error = %e, "bgp: ignoring the record of VIPs on lo; it will be rewritten");
                return Vec::new();
            }
        };
        self.recorded = Some(recorded.clone());
        let Some(lo) = self.lo.filter(|_| !recorded.is_empty()) else {
            return Vec::new();
        };
        let on_lo: Vec<lo_record::Entry> = match self.netlink.addresses(lo).await {
            Ok(a) => a.iter().map(|a| (a.addr, a.prefix_len)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "bgp: cannot list lo's addresses; VIPs of an earlier run stay");
                return Vec::new();
            }
        };
        let stale = lo_record::stale(&recorded, wanted, &on_lo);
        for (addr, len) in &stale {
            tracing::info!(vip = %addr, prefix_len = len, "bgp: removing a VIP an earlier run left on lo");
        }
        stale
            .into_iter()
            .map(|(addr, prefix_len)| Vip { addr, prefix_len })
            .collect()
    }

    /// Writes the record: the VIPs of the instances plus `extra` (about to be removed).
    /// Small file on /run: written inline.
    fn record(&mut self, extra: &[Vip]) {
        let set: BTreeSet<lo_record::Entry> = self
            .instances
            .values()
            .flat_map(|a| a.cfg.vips.iter())
            .chain(extra)
            .map(|v| (v.addr, v.prefix_len))
            .collect();
        if self.recorded.as_ref() == Some(&set) {
            return;
        }
        match lo_record::write(&self.record, &set) {
            Ok(()) => self.recorded = Some(set),
            Err(e) => {
                tracing::warn!(file = %self.record.display(), error = %e, "bgp: cannot record the VIPs on lo; a killed run would leave them");
                self.recorded = None;
            }
        }
    }

    /// Routes of the instances eligible now (see [`instance_routes`]).
    fn routes(&self) -> Vec<Route> {
        let Some(bgp) = &self.bgp else {
            return Vec::new();
        };
        self.instances
            .values()
            .flat_map(|a| instance_routes(bgp, &a.cfg, &a.checks.current()))
            .collect()
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
                let peers: Vec<BgpPeerStatus> = s
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
                for c in peer_changes(&self.peers, &peers) {
                    if c.is_down() {
                        tracing::warn!(peer = %c.peer, from = ?c.from, to = %c.to, bfd_from = ?c.bfd_from, bfd_to = ?c.bfd_to, "bgp: session down");
                    } else if c.is_up() {
                        tracing::info!(peer = %c.peer, from = ?c.from, to = %c.to, bfd_from = ?c.bfd_from, bfd_to = ?c.bfd_to, "bgp: session up");
                    } else {
                        tracing::info!(peer = %c.peer, from = ?c.from, to = %c.to, bfd_from = ?c.bfd_from, bfd_to = ?c.bfd_to, "bgp: peer state changed");
                    }
                    // No receiver is not an error.
                    let _ = self.changes.send(c);
                }
                self.peers = peers;
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

    /// [`STATE_INTERVAL_CONVERGING`] while a configured peer is not Established (or was
    /// not read yet), [`STATE_INTERVAL`] otherwise.
    fn read_interval(&self) -> Duration {
        let Some(bgp) = &self.bgp else {
            return STATE_INTERVAL;
        };
        let all_up = bgp.peers.iter().all(|p| {
            let a = p.address.to_string();
            self.peers
                .iter()
                .any(|s| s.address == a && s.state == ESTABLISHED)
        });
        if all_up {
            STATE_INTERVAL
        } else {
            STATE_INTERVAL_CONVERGING
        }
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
                let eligible = self
                    .bgp
                    .as_ref()
                    .is_some_and(|b| !instance_routes(b, &a.cfg, &verdicts).is_empty());
                BgpInstanceStatus {
                    name: a.cfg.name.clone(),
                    vips: a.cfg.vips.iter().map(|v| v.addr.to_string()).collect(),
                    announced: eligible && self.applied.is_some(),
                    failing_checks,
                    ineligible: a.cfg.ineligible.clone(),
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
        self.record(&[]);
        self.guard(&[]).await;
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

/// The routes of one instance: its VIPs with its attributes (or the `bgp:` defaults) when
/// every health check without weight passes and Kubernetes mode has not marked it
/// ineligible (`Instance::ineligible`, e.g. no ready local endpoint for
/// `externalTrafficPolicy: Local`); none otherwise. Pure, so the decision is tested alone.
pub(crate) fn instance_routes(bgp: &Bgp, cfg: &Instance, verdicts: &CheckMap) -> Vec<Route> {
    let (_, fault) = health::weight_and_fault(&cfg.health_checks, verdicts);
    if fault || cfg.ineligible.is_some() {
        return Vec::new();
    }
    let AnnounceMode::Bgp(attrs) = &cfg.mode else {
        return Vec::new();
    };
    let attrs = attrs.or(&bgp.defaults);
    cfg.vips
        .iter()
        .map(|v| Route {
            addr: v.addr,
            attrs: attrs.clone(),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "bgp:\n  asn: 64512\n  router_id: 192.0.2.1\n  peers:\n    - {address: 192.0.2.254, asn: 64500}\n    - {address: 2001:db8::254, asn: 64500}\n\
        instances:\n  - name: web\n    announce: bgp\n    vips: [203.0.113.10, 2001:db8::10]\n    health_checks:\n      \
        - {name: flag, exec: [/bin/true], interval: 1s, timeout: 1s}\n      \
        - {name: other, exec: [/bin/true], interval: 1s, timeout: 1s}\n";

    fn setup() -> (Bgp, Instance) {
        let cfg = edgevip_config::parse(YAML).unwrap();
        (cfg.bgp.unwrap(), cfg.instances[0].clone())
    }

    fn verdicts(flag: bool, other: bool) -> CheckMap {
        [("flag".to_string(), flag), ("other".to_string(), other)].into()
    }

    fn addrs(r: &[Route]) -> Vec<String> {
        r.iter().map(|r| r.addr.to_string()).collect()
    }

    #[test]
    fn routes_follow_checks_and_eligibility() {
        let (bgp, mut i) = setup();
        assert_eq!(
            addrs(&instance_routes(&bgp, &i, &verdicts(true, true))),
            ["203.0.113.10", "2001:db8::10"]
        );
        // Any check failing, or without a verdict yet, withdraws.
        assert!(instance_routes(&bgp, &i, &verdicts(true, false)).is_empty());
        assert!(instance_routes(&bgp, &i, &verdicts(false, true)).is_empty());
        assert!(instance_routes(&bgp, &i, &CheckMap::new()).is_empty());
        // Kubernetes mode: no ready local endpoint.
        i.ineligible = Some("no ready local endpoint".into());
        assert!(instance_routes(&bgp, &i, &verdicts(true, true)).is_empty());
        // An ineligible change alone is a different config: update() re-syncs on it.
        let (_, same) = setup();
        assert_ne!(i, same);
    }

    fn peer(addr: &str, state: &str, bfd: Option<&str>) -> BgpPeerStatus {
        BgpPeerStatus {
            address: addr.into(),
            state: state.into(),
            uptime_ms: None,
            bfd: bfd.map(Into::into),
            advertised: Vec::new(),
        }
    }

    #[test]
    fn peer_changes_diff_session_and_bfd() {
        let a = "192.0.2.254";
        let b = "198.51.100.254";
        // First read: known states are changes from nothing; `unknown` without BFD is not.
        let first = [peer(a, "Active", Some("down")), peer(b, "unknown", None)];
        let c = peer_changes(&[], &first);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].peer, a);
        assert_eq!(c[0].from, None);
        assert!(!c[0].is_up() && !c[0].is_down());
        // Nothing changed: nothing.
        assert!(peer_changes(&first, &first).is_empty());
        // Up, with BFD.
        let up = [peer(a, "Established", Some("up")), peer(b, "unknown", None)];
        let c = peer_changes(&first, &up);
        assert_eq!(
            c,
            [PeerChange {
                peer: a.into(),
                from: Some("Active".into()),
                to: "Established".into(),
                bfd_from: Some("down".into()),
                bfd_to: Some("up".into()),
            }]
        );
        assert!(c[0].is_up());
        // BFD down alone (bgpd not noticed yet) is a change, neither up nor down.
        let bfd_down = [
            peer(a, "Established", Some("down")),
            peer(b, "unknown", None),
        ];
        let c = peer_changes(&up, &bfd_down);
        assert_eq!(c.len(), 1);
        assert!(!c[0].is_up() && !c[0].is_down());
        // Session down.
        let down = [peer(a, "Idle", Some("down")), peer(b, "Connect", None)];
        let c = peer_changes(&bfd_down, &down);
        assert_eq!(c.len(), 2);
        assert!(c[0].is_down());
        assert_eq!(c[1].from.as_deref(), Some("unknown"));
        // A peer removed from the config yields nothing.
        assert!(peer_changes(&down, &down[..1]).is_empty());
    }
}
