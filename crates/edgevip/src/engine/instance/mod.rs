//! One instance's task: its virtual routers (one per address family of its VIPs) and the
//! events that drive them. Every protocol decision comes from `vrrp::Router`; this task
//! feeds it inputs and carries out its actions through small parts with one job each:
//! `vr` (a router's sending and acceptance), `vips` (addresses), `announce` (GARP / NA),
//! `observe` (logs, metrics, hooks, Events, status).

mod announce;
mod observe;
mod vips;
mod vr;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use edgevip_config::Instance;
use edgevip_netio::{Announcer, Family, LinkInfo};
use tokio::sync::mpsc;
use vrrp::router::{Action, Datagram, DropReason, Input, State};

use super::changes::Changes;
use super::links::LinkMap;
use super::receiver::{self, RegisterError};
use super::{Cmd, Shared, translate};
use crate::health::{self, Checks};
use crate::metrics::Metrics;
use announce::Announcements;
use vips::VipSet;
use vr::{Visible, Vr};

/// Why an instance could not start. It is retried with backoff and shown as failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("interface {interface}: {error}")]
    Interface { interface: String, error: String },
    #[error("interface {0} has no MAC address")]
    NoMac(String),
    #[error("interface {interface} has no usable {family} address")]
    NoAddress {
        interface: String,
        family: &'static str,
    },
    #[error("announcer on {interface}: {error}")]
    Announcer {
        interface: String,
        error: std::io::Error,
    },
    #[error(transparent)]
    Register(#[from] RegisterError),
}

/// First and longest pause between attempts to start a failed instance.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs one instance until it is shut down. An instance that cannot start (interface
/// missing, no address yet) is retried with backoff and takes updates meanwhile.
pub async fn run(mut cfg: Instance, sh: Shared, mut cmds: mpsc::Receiver<Cmd>) {
    let mut pause = RETRY_FIRST;
    let mut links = sh.links.subscribe();
    loop {
        let seen = links.borrow_and_update().get(&cfg.interface).copied();
        // Boxed: opening is large (netlink) and happens once; the running task stays small.
        match Box::pin(Task::open(cfg.clone(), sh.clone())).await {
            Ok(mut task) => {
                sh.metrics.set_failed(&cfg.name, false);
                return task.main(&mut cmds).await;
            }
            Err(e) => {
                tracing::error!(instance = %cfg.name, error = %e, retry_in = ?pause, "instance failed to start");
                sh.board.set(observe::failed(&cfg, &e.to_string()));
                sh.metrics.set_failed(&cfg.name, true);
            }
        }
        tokio::select! {
            c = cmds.recv() => match c {
                Some(Cmd::Update(new, done)) => {
                    cfg = *new;
                    let _ = done.send(true);
                    pause = RETRY_FIRST;
                }
                Some(Cmd::Shutdown) | None => return,
            },
            _ = tokio::time::sleep(pause) => pause = (pause * 2).min(RETRY_MAX),
            // The interface appeared or came up: try now, not at the end of the backoff.
            () = link_changed(&mut links, &cfg.interface, seen) => pause = RETRY_FIRST,
        }
    }
}

/// Resolves when `name`'s entry in the link map differs from `seen`; pending forever if
/// the link watch has ended.
async fn link_changed(
    links: &mut tokio::sync::watch::Receiver<LinkMap>,
    name: &str,
    seen: Option<bool>,
) {
    while links.changed().await.is_ok() {
        if links.borrow_and_update().get(name).copied() != seen {
            return;
        }
    }
    std::future::pending().await
}

/// Tracked interfaces and health checks, summed: a priority adjustment and whether a
/// weightless one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Tracking {
    weight: i32,
    fault: bool,
}

struct Task {
    cfg: Instance,
    sh: Shared,
    link: LinkInfo,
    vips: VipSet,
    vrs: Vec<Vr>,
    /// Datagrams of our VRID from the shared receive paths, both families.
    rx: mpsc::Receiver<receiver::Queued>,
    /// Every address of this host on the interface but our VIPs: packets from them are ours.
    own: Vec<IpAddr>,
    link_up: bool,
    tracking: Tracking,
    checks: Checks,
    /// What the status board shows, to publish only on change.
    published: [Option<Visible>; 2],
    /// Drop counters by (router, reason), resolved once: a flood costs an increment each.
    drops: std::collections::HashMap<
        (usize, &'static str),
        prometheus_client::metrics::counter::Counter,
    >,
    drop_log: LogLimit,
}

/// At most one log line a second; says how many were held back meanwhile.
#[derive(Default)]
struct LogLimit {
    last: Option<std::time::Instant>,
    held: u64,
}

impl LogLimit {
    /// `Some(held back since the last line)` when a line may go out now.
    fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

enum Event {
    Cmd(Option<Cmd>),
    Rx(Option<receiver::Queued>),
    Timer,
    Links(LinkMap),
    Checks,
}

impl Task {
    async fn open(cfg: Instance, sh: Shared) -> Result<Task, StartError> {
        let iface = |error: String| StartError::Interface {
            interface: cfg.interface.clone(),
            error,
        };
        let link = sh
            .netlink
            .link_by_name(&cfg.interface)
            .await
            .map_err(|e| iface(e.to_string()))?;
        let mac = link
            .mac
            .ok_or_else(|| StartError::NoMac(cfg.interface.clone()))?;
        let announcer = Arc::new(Announcer::open(link.index, &cfg.interface, mac).map_err(
            |error| StartError::Announcer {
                interface: cfg.interface.clone(),
                error,
            },
        )?);
        let (tx, rx) = receiver::queue();
        let vip_addrs: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let mut vrs = Vec::new();
        for family in translate::families(&cfg) {
            let primary = usable_primary(&sh, &cfg, link.index, family, &vip_addrs).await?;
            let reg = sh.receivers.register(
                link.index,
                &cfg.interface,
                family,
                cfg.vrid,
                tx.clone(),
                &sh.metrics,
            )?;
            let label = receiver::family_label(family);
            let counter = sh
                .metrics
                .announcements
                .get_or_create(&Metrics::router(&cfg.name, label))
                .clone();
            let ann = Announcements::new(announcer.clone(), &cfg.name, counter);
            vrs.push(Vr::new(&cfg, family, primary, reg, ann, &sh.metrics));
        }
        let own = sh
            .netlink
            .addresses(link.index)
            .await
            .map(|v| v.into_iter().map(|a| a.addr).collect())
            .unwrap_or_default();
        let mut t = Task {
            link_up: link.up,
            vips: VipSet::new(
                sh.netlink.clone(),
                link.index,
                &cfg.name,
                sh.metrics.clone(),
            ),
            link,
            vrs,
            rx,
            own,
            tracking: Tracking::default(),
            checks: Checks::start(&cfg.name, &cfg.health_checks, sh.metrics.clone()),
            published: [None; 2],
            drops: Default::default(),
            drop_log: LogLimit::default(),
            cfg,
            sh,
        };
        t.tracking = t.tracking(&t.sh.links.subscribe().borrow().clone());
        Ok(t)
    }

    async fn main(&mut self, cmds: &mut mpsc::Receiver<Cmd>) {
        let mut link_map = self.sh.links.subscribe().borrow().clone();
        let mut links = Changes::new(self.sh.links.subscribe());
        let mut checks = Changes::new(self.checks.subscribe());

        Box::pin(self.remove_stale_vips()).await;
        for i in 0..self.vrs.len() {
            if !self.link_up {
                self.feed(i, Input::InterfaceDown).await;
            }
            if self.tracking.fault {
                self.feed(i, Input::TrackFault(true)).await;
            }
            self.feed(i, Input::Startup).await;
            let p = self.effective_priority();
            self.feed(i, Input::PriorityChanged(p)).await;
        }
        tracing::info!(instance = %self.cfg.name, vrid = self.cfg.vrid, interface = %self.cfg.interface,
            at = %self.sh.clock.now(), ineligible = self.cfg.ineligible.as_deref().unwrap_or("no"),
            "instance started");
        self.publish();

        let mut stopping = false;
        // One timer, moved rather than re-created: a backup moves it on every advert.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed = None;
        loop {
            if stopping && self.vrs.iter().all(|f| f.router.state() == State::Init) {
                break;
            }
            let deadline = self.vrs.iter().filter_map(|f| f.router.deadline()).min();
            let wake = deadline.map(|d| self.sh.clock.to_tokio(d));
            if wake != armed {
                if let Some(at) = wake {
                    timer.as_mut().reset(at);
                }
                armed = wake;
            }
            // Polled in this order, stopping at the first ready one: the timer first, so no
            // input rate can make it late; datagrams before the watches, which an advert
            // then does not poll. A flood cannot starve the watches: the queue's receive
            // spends tokio's cooperative budget and turns pending when it runs out.
            let ev = tokio::select! {
                biased;
                _ = &mut timer, if armed.is_some() => Event::Timer,
                c = cmds.recv(), if !stopping => Event::Cmd(c),
                r = self.rx.recv() => Event::Rx(r),
                m = links.next() => Event::Links(m),
                _ = checks.next() => Event::Checks,
            };
            self.sh.heartbeat.beat(self.sh.clock.now_ms());
            match ev {
                Event::Cmd(Some(Cmd::Update(new, done))) => {
                    let _ = done.send(Box::pin(self.update(*new)).await);
                }
                Event::Cmd(Some(Cmd::Shutdown)) | Event::Cmd(None) => {
                    stopping = true;
                    for i in 0..self.vrs.len() {
                        self.feed(i, Input::Shutdown).await;
                    }
                }
                Event::Rx(Some(d)) => self.received(d).await,
                // Our registrations hold the sender: cannot end while we run.
                Event::Rx(None) => {}
                Event::Timer => {
                    let now = self.sh.clock.now();
                    for i in 0..self.vrs.len() {
                        if self.vrs[i].router.deadline().is_some_and(|d| d <= now) {
                            self.feed(i, Input::Timer).await;
                        }
                    }
                }
                Event::Links(m) => {
                    link_map = m;
                    Box::pin(self.links_changed(&link_map)).await;
                }
                Event::Checks => {
                    Box::pin(self.retrack(&link_map, "health checks changed")).await;
                }
            }
        }
        for f in &mut self.vrs {
            f.announcements.stop();
        }
        self.publish();
        for (i, reason) in self.drops.keys() {
            self.sh.metrics.dropped.remove(&crate::metrics::DropLabels {
                instance: self.cfg.name.clone(),
                family: self.vrs[*i].label.into(),
                reason: (*reason).into(),
            });
        }
        tracing::info!(instance = %self.cfg.name, "instance stopped");
    }

    /// VIPs of ours that a crashed earlier run left on the interface would answer traffic
    /// as a second master: remove them before joining as backup.
    async fn remove_stale_vips(&mut self) {
        let present = self
            .sh
            .netlink
            .addresses(self.link.index)
            .await
            .unwrap_or_default();
        let stale: Vec<_> = self
            .cfg
            .vips
            .iter()
            .filter(|v| present.iter().any(|a| a.addr == v.addr))
            .copied()
            .collect();
        for v in &stale {
            tracing::warn!(instance = %self.cfg.name, vip = %v.addr, "removing VIP left by an earlier run");
        }
        self.vips.remove(&stale).await;
        let vips = &self.cfg.vips;
        self.own.retain(|a| !vips.iter().any(|v| v.addr == *a));
    }

    async fn received(&mut self, d: receiver::Queued) {
        let family = translate::family_of(d.src);
        let Some(i) = self.vrs.iter().position(|f| f.family == family) else {
            // Our VRID in a family we do not run: another router's business.
            self.sh.metrics.drop(
                &self.cfg.name,
                receiver::family_label(family),
                "family_not_configured",
            );
            return;
        };
        let dg = Datagram {
            src: d.src,
            dst: d.dst,
            ttl: d.ttl,
            payload: &d.payload,
        };
        match self.vrs[i].accept(&dg, &self.own) {
            Ok(a) => {
                if !a.vips_match && self.drop_log.allow(std::time::Instant::now()).is_some() {
                    tracing::warn!(instance = %self.cfg.name, src = %d.src,
                        "advert lists other VIPs than ours: the routers of this VRID are configured differently");
                }
                self.feed(i, Input::Advert(a.heard)).await
            }
            Err(reason) => {
                let label = reason.as_str();
                let vr = &self.vrs[i];
                let counter = self.drops.entry((i, label)).or_insert_with(|| {
                    self.sh
                        .metrics
                        .dropped
                        .get_or_create(&crate::metrics::DropLabels {
                            instance: self.cfg.name.clone(),
                            family: vr.label.into(),
                            reason: label.into(),
                        })
                        .clone()
                });
                counter.inc();
                // A flood must not become a flood of log lines: one a second, with a count.
                if let Some(skipped) = self.drop_log.allow(std::time::Instant::now()) {
                    if reason == DropReason::VipMismatch {
                        tracing::warn!(instance = %self.cfg.name, src = %d.src, skipped,
                            "advert lists other VIPs than ours: dropped (strict_vip_list)");
                        return;
                    }
                    tracing::debug!(instance = %self.cfg.name, src = %d.src, %reason, skipped, "advert dropped");
                }
            }
        }
    }

    /// Hands one input to router `i` and carries out the actions in order.
    async fn feed(&mut self, i: usize, input: Input) {
        let now = self.sh.clock.now();
        let actions = self.vrs[i].router.handle(input, now);
        self.execute(i, actions).await;
    }

    async fn execute(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendAdvert { priority } => {
                    self.vrs[i].send_advert(&self.cfg.name, priority).await
                }
                Action::AddVips => {
                    let v = translate::vips(&self.cfg, self.vrs[i].family);
                    self.vips.add(&v).await;
                }
                Action::RemoveVips => {
                    self.vrs[i].announcements.stop();
                    let v = translate::vips(&self.cfg, self.vrs[i].family);
                    self.vips.remove(&v).await;
                }
                Action::Announce => {
                    let vr = &mut self.vrs[i];
                    let addrs = translate::vips(&self.cfg, vr.family)
                        .iter()
                        .map(|v| v.addr)
                        .collect();
                    Box::pin(vr.announcements.start(addrs, &self.cfg.announce)).await;
                }
                Action::Timer(_) => {}
                Action::StateChanged { from, to, reason } => {
                    observe::transition(&self.sh, &self.cfg, &mut self.vrs[i], from, to, reason)
                }
            }
        }
        self.vrs[i].show_priority();
        self.publish_if_changed();
    }

    /// Applies a changed config in place when the sockets and every router allow it
    /// (`Router::can_reconfigure` decides for the core); `false` asks for a restart.
    async fn update(&mut self, new: Instance) -> bool {
        if !translate::in_place(&self.cfg, &new, self.vrs.iter().map(|f| &f.router)) {
            return false;
        }
        let old = std::mem::replace(&mut self.cfg, new);
        let now = self.sh.clock.now();
        for i in 0..self.vrs.len() {
            self.vrs[i].replan(&self.cfg);
            let rcfg = translate::router_config(&self.cfg, self.vrs[i].primary);
            let actions = self.vrs[i].router.reconfigure(rcfg, now);
            self.execute(i, actions).await;
            if self.vrs[i].router.holds_vips() {
                // New VIPs are added and announced, removed ones dropped; the rest untouched.
                let family = self.vrs[i].family;
                let (was, is) = (
                    translate::vips(&old, family),
                    translate::vips(&self.cfg, family),
                );
                let removed: Vec<_> = was.iter().filter(|v| !is.contains(v)).copied().collect();
                let added: Vec<_> = is.iter().filter(|v| !was.contains(v)).copied().collect();
                self.vips.remove(&removed).await;
                self.vips.add(&added).await;
                if !added.is_empty() {
                    let addrs = is.iter().map(|v| v.addr).collect();
                    self.vrs[i]
                        .announcements
                        .start(addrs, &self.cfg.announce)
                        .await;
                }
            }
        }
        self.checks.update(&self.cfg.health_checks);
        let links = self.sh.links.subscribe().borrow().clone();
        self.retrack(&links, "reconfigured").await;
        let p = self.effective_priority();
        for i in 0..self.vrs.len() {
            self.feed(i, Input::PriorityChanged(p)).await;
        }
        self.publish();
        true
    }

    fn tracking(&self, links: &LinkMap) -> Tracking {
        // An interface we cannot see counts as down: tracking must fail safe.
        let (weight, fault) = health::tally(
            self.cfg
                .track_interfaces
                .iter()
                .map(|t| (links.get(&t.name).copied().unwrap_or(false), t.weight)),
        );
        let (w, f) = health::weight_and_fault(&self.cfg.health_checks, &self.checks.current());
        Tracking {
            weight: weight + w,
            fault: fault || f || self.cfg.ineligible.is_some(),
        }
    }

    fn effective_priority(&self) -> u8 {
        (i32::from(self.cfg.priority) + self.tracking.weight).clamp(1, 254) as u8
    }

    async fn links_changed(&mut self, links: &LinkMap) {
        if let Some(&up) = links.get(&self.cfg.interface)
            && up != self.link_up
        {
            self.link_up = up;
            tracing::info!(instance = %self.cfg.name, interface = %self.cfg.interface, up, "link changed");
            let input = if up {
                Input::InterfaceUp
            } else {
                Input::InterfaceDown
            };
            for i in 0..self.vrs.len() {
                self.feed(i, input).await;
            }
        }
        self.retrack(links, "tracked interfaces changed").await;
    }

    /// Re-evaluates tracked interfaces and health checks; feeds a changed fault or priority.
    async fn retrack(&mut self, links: &LinkMap, why: &str) {
        let t = self.tracking(links);
        if t == self.tracking {
            return;
        }
        let fault_changed = t.fault != self.tracking.fault;
        self.tracking = t;
        tracing::info!(instance = %self.cfg.name, weight = t.weight, fault = t.fault,
            ineligible = self.cfg.ineligible.as_deref().unwrap_or("no"), "{why}");
        let p = self.effective_priority();
        for i in 0..self.vrs.len() {
            if fault_changed {
                self.feed(i, Input::TrackFault(t.fault)).await;
            }
            self.feed(i, Input::PriorityChanged(p)).await;
        }
    }

    fn visible(&self) -> [Option<Visible>; 2] {
        let mut v = [None; 2];
        for (slot, f) in v.iter_mut().zip(&self.vrs) {
            *slot = Some(f.visible());
        }
        v
    }

    /// Publishes only when something visible changed: building the status (strings,
    /// timestamps) on every advert was most of the daemon's idle CPU.
    fn publish_if_changed(&mut self) {
        if self.published != self.visible() {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.published = self.visible();
        self.sh.board.set(observe::status(&self.cfg, &self.vrs));
    }
}

/// Our advert source address. A link-local IPv6 address is unusable while DAD runs (the
/// kernel refuses it as a source), which happens right after the link comes up: wait for
/// it, bounded.
async fn usable_primary(
    sh: &Shared,
    cfg: &Instance,
    index: u32,
    family: Family,
    vips: &[IpAddr],
) -> Result<IpAddr, StartError> {
    if family == Family::V4
        && let Some(src) = cfg.unicast_src
    {
        // The operator's (or the cluster's) choice; the kernel refuses a non-local one
        // on send, which is logged and counted.
        return Ok(src);
    }
    let iface = |e: edgevip_netio::NetlinkError| StartError::Interface {
        interface: cfg.interface.clone(),
        error: e.to_string(),
    };
    for _ in 0..50 {
        let addrs = sh.netlink.addresses(index).await.map_err(iface)?;
        let tentative: Vec<IpAddr> = addrs
            .iter()
            .filter(|a| a.tentative)
            .map(|a| a.addr)
            .collect();
        let mut skip = vips.to_vec();
        skip.extend(&tentative);
        let found = sh
            .netlink
            .primary_address(index, family, &skip)
            .await
            .map_err(iface)?;
        match found {
            Some(a) => return Ok(a),
            None if tentative.is_empty() => break,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Err(StartError::NoAddress {
        interface: cfg.interface.clone(),
        family: receiver::family_label(family),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_limited_to_one_a_second_with_a_count() {
        let mut l = LogLimit::default();
        let t0 = std::time::Instant::now();
        assert_eq!(l.allow(t0), Some(0));
        for k in 1..=1000 {
            assert_eq!(l.allow(t0 + Duration::from_micros(k)), None);
        }
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), Some(1000));
    }
}
