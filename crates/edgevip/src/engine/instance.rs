//! One instance's task: its virtual routers (one per address family of its VIPs), their
//! sockets and timers. All protocol decisions come from `vrrp::Router`; this file only
//! carries out the actions on Linux and reports what happened.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::SystemTime;

use edgevip_config::{Instance, Version as CfgVersion};
use edgevip_netio::{Announcer, Family, LinkInfo, Mode, VrrpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vrrp::packet::{self, Advert, Auth, ChecksumForm, Version};
use vrrp::router::{self, Action, Input, Router, State};

use super::rx::{self, Expect};
use super::{Cmd, Shared};
use crate::health::{self, Checks};
use crate::metrics::Metrics;
use crate::notify;
use crate::status::{self, InstanceStatus, RouterStatus};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

const MCAST_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
const MCAST_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12));

/// Whether a reload can be applied without restarting the instance's routers.
pub fn soft_change(old: &Instance, new: &Instance) -> bool {
    old.interface == new.interface
        && old.vrid == new.vrid
        && old.version == new.version
        && old.advert_interval == new.advert_interval
        && families(old) == families(new)
        && old.unicast == new.unicast
        && (old.priority == router::OWNER_PRIORITY) == (new.priority == router::OWNER_PRIORITY)
}

fn families(i: &Instance) -> Vec<Family> {
    let mut f = Vec::new();
    if i.vips.iter().any(|v| v.addr.is_ipv4()) {
        f.push(Family::V4);
    }
    if i.vips.iter().any(|v| v.addr.is_ipv6()) {
        f.push(Family::V6);
    }
    f
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// What `/status` shows of one router: state, master, effective priority, transitions.
type Visible = (State, Option<IpAddr>, u8, u64);

/// One RFC virtual router and its I/O.
struct Fam {
    family: Family,
    label: &'static str,
    router: Router,
    socket: Arc<VrrpSocket>,
    primary: IpAddr,
    transitions: u64,
    since: SystemTime,
    announcing: Option<JoinHandle<()>>,
    /// Metric handles resolved once: adverts go out many times a second, and a label
    /// lookup per advert (with its String allocations) showed in the CPU profile.
    sent: Counter,
    received: Counter,
    priority_gauge: Gauge,
}

struct Task {
    cfg: Instance,
    sh: Shared,
    link: LinkInfo,
    announcer: Arc<Announcer>,
    fams: Vec<Fam>,
    own: Vec<IpAddr>,
    link_up: bool,
    /// Sum of weights of down tracked interfaces and failed health checks, and whether a
    /// weightless one is down.
    track: (i32, bool),
    checks: Checks,
    /// The signature last published to the status board.
    published: Option<Vec<Visible>>,
}

enum Event {
    Cmd(Option<Cmd>),
    Rx(usize, edgevip_netio::Received),
    RxError(usize, String),
    Timer,
    Links,
    Checks,
}

/// Runs one instance until it is shut down (or fails to start, which is logged).
pub async fn run(cfg: Instance, sh: Shared, mut cmds: mpsc::Receiver<Cmd>) {
    let name = cfg.name.clone();
    let mut task = match Task::open(cfg, sh).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(instance = %name, error = %e, "instance failed to start");
            // Stay alive for the engine (a reload may fix it), doing nothing.
            while let Some(c) = cmds.recv().await {
                if matches!(c, Cmd::Shutdown) {
                    break;
                }
            }
            return;
        }
    };
    task.main(&mut cmds).await;
}

impl Task {
    async fn open(cfg: Instance, sh: Shared) -> Result<Task, String> {
        let link = sh
            .netlink
            .link_by_name(&cfg.interface)
            .await
            .map_err(|e| format!("interface {}: {e}", cfg.interface))?;
        let mac = link
            .mac
            .ok_or_else(|| format!("interface {} has no MAC address", cfg.interface))?;
        let announcer = Arc::new(
            Announcer::open(link.index, &cfg.interface, mac)
                .map_err(|e| format!("announcer on {}: {e}", cfg.interface))?,
        );
        let vip_addrs: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let mut fams = Vec::new();
        for family in families(&cfg) {
            let primary = usable_primary(&sh, &cfg, link.index, family, &vip_addrs).await?;
            let mode = if cfg.unicast {
                Mode::Unicast
            } else {
                Mode::Multicast
            };
            let socket = VrrpSocket::open(family, link.index, &cfg.interface, primary, mode)
                .map_err(|e| format!("VRRP socket on {}: {e}", cfg.interface))?;
            let rcfg = router_config(&cfg, primary);
            fams.push(Fam {
                family,
                label: family_name(family),
                router: Router::new(rcfg),
                socket: Arc::new(socket),
                primary,
                transitions: 0,
                since: SystemTime::now(),
                announcing: None,
                sent: sh
                    .metrics
                    .adverts_sent
                    .get_or_create(&Metrics::router(&cfg.name, family_name(family)))
                    .clone(),
                received: sh
                    .metrics
                    .adverts_received
                    .get_or_create(&Metrics::router(&cfg.name, family_name(family)))
                    .clone(),
                priority_gauge: sh
                    .metrics
                    .priority
                    .get_or_create(&Metrics::router(&cfg.name, family_name(family)))
                    .clone(),
            });
        }
        let own = sh
            .netlink
            .addresses(link.index)
            .await
            .map(|v| v.into_iter().map(|a| a.addr).collect())
            .unwrap_or_default();
        let mut t = Task {
            link_up: link.up,
            link,
            announcer,
            fams,
            own,
            track: (0, false),
            checks: Checks::start(&cfg.name, &cfg.health_checks, sh.metrics.clone()),
            published: None,
            cfg,
            sh,
        };
        t.track = t.track_state(&t.sh.links.subscribe().borrow().clone());
        Ok(t)
    }

    async fn main(&mut self, cmds: &mut mpsc::Receiver<Cmd>) {
        let (rx_tx, mut rx_rx) = mpsc::channel(256);
        let mut readers = Vec::new();
        for (i, f) in self.fams.iter().enumerate() {
            readers.push(tokio::spawn(read_loop(i, f.socket.clone(), rx_tx.clone())));
        }
        drop(rx_tx);
        let mut links = self.sh.links.subscribe();
        links.mark_unchanged();
        let mut checks = self.checks.subscribe();
        checks.mark_unchanged();

        self.remove_stale_vips().await;
        let now = self.sh.clock.now();
        for i in 0..self.fams.len() {
            if !self.link_up {
                self.feed(i, Input::InterfaceDown).await;
            }
            if self.track.1 {
                self.feed(i, Input::TrackFault(true)).await;
            }
            self.feed(i, Input::Startup).await;
            let p = self.effective_priority();
            self.feed(i, Input::PriorityChanged(p)).await;
        }
        tracing::info!(instance = %self.cfg.name, vrid = self.cfg.vrid, interface = %self.cfg.interface,
            at = %now, "instance started");
        self.publish();

        let mut stopping = false;
        loop {
            self.sh.heartbeat.beat(self.sh.clock.now_ms());
            if stopping && self.fams.iter().all(|f| f.router.state() == State::Init) {
                break;
            }
            let deadline = self.fams.iter().filter_map(|f| f.router.deadline()).min();
            let sleep_to = deadline
                .map(|d| self.sh.clock.to_tokio(d))
                .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(1));
            let ev = tokio::select! {
                biased;
                c = cmds.recv(), if !stopping => Event::Cmd(c),
                r = rx_rx.recv() => match r {
                    Some((i, Ok(p))) => Event::Rx(i, p),
                    Some((i, Err(e))) => Event::RxError(i, e),
                    None => Event::Timer,
                },
                _ = links.changed() => Event::Links,
                _ = checks.changed() => Event::Checks,
                _ = tokio::time::sleep_until(sleep_to) => Event::Timer,
            };
            match ev {
                Event::Cmd(Some(Cmd::Update(new))) => self.update(*new).await,
                Event::Cmd(Some(Cmd::Shutdown)) | Event::Cmd(None) => {
                    stopping = true;
                    for i in 0..self.fams.len() {
                        self.feed(i, Input::Shutdown).await;
                    }
                }
                Event::Rx(i, p) => self.received(i, p).await,
                Event::RxError(i, e) => {
                    tracing::warn!(instance = %self.cfg.name, family = self.fams[i].label, error = %e, "receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Event::Timer => {
                    let now = self.sh.clock.now();
                    for i in 0..self.fams.len() {
                        if self.fams[i].router.deadline().is_some_and(|d| d <= now) {
                            self.feed(i, Input::Timer).await;
                        }
                    }
                }
                Event::Links => {
                    let map = links.borrow_and_update().clone();
                    self.links_changed(&map).await;
                }
                Event::Checks => {
                    checks.mark_unchanged();
                    let map = links.borrow().clone();
                    self.retrack(&map, "health checks changed").await;
                }
            }
        }
        for r in readers {
            r.abort();
        }
        for f in &mut self.fams {
            if let Some(a) = f.announcing.take() {
                a.abort();
            }
        }
        self.publish();
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
        for v in &self.cfg.vips {
            if present.iter().any(|a| a.addr == v.addr) {
                tracing::warn!(instance = %self.cfg.name, vip = %v.addr, "removing VIP left by an earlier run");
                if let Err(e) = self
                    .sh
                    .netlink
                    .del_vip(self.link.index, v.addr, v.prefix_len)
                    .await
                {
                    self.vip_error("remove", v.addr, &e.to_string());
                }
            }
        }
        self.own
            .retain(|a| !self.cfg.vips.iter().any(|v| v.addr == *a));
    }

    async fn received(&mut self, i: usize, p: edgevip_netio::Received) {
        let f = &self.fams[i];
        let auth = auth_of(&self.cfg);
        let peers: Vec<IpAddr> = self
            .cfg
            .unicast_peers
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == (f.family == Family::V4))
            .collect();
        let e = Expect {
            vrid: self.cfg.vrid,
            version: version_of(&self.cfg),
            auth: &auth,
            unicast: self.cfg.unicast,
            peers: &peers,
            unicast_min_ttl: self.cfg.unicast_min_ttl,
            own: &self.own,
        };
        match rx::accept(&e, p.src, p.dst, p.ttl, &p.payload) {
            Ok((heard, form)) => {
                let m = &self.sh.metrics;
                f.received.inc();
                if f.family == Family::V4 && heard.version == Version::V3 {
                    let form = match form {
                        ChecksumForm::PseudoHeader => "pseudo_header",
                        ChecksumForm::MessageOnly => "message_only",
                    };
                    m.checksum_forms
                        .get_or_create(&crate::metrics::ChecksumLabels {
                            instance: self.cfg.name.clone(),
                            form: form.into(),
                        })
                        .inc();
                }
                self.feed(i, Input::Advert(heard)).await;
            }
            Err(rx::OTHER_VRID) => {}
            Err(reason) => {
                tracing::debug!(instance = %self.cfg.name, src = %p.src, reason, "advert dropped");
                self.sh.metrics.drop(&self.cfg.name, f.label, reason);
            }
        }
    }

    /// Hands one input to family `i`'s router and carries out the actions in order.
    async fn feed(&mut self, i: usize, input: Input) {
        let now = self.sh.clock.now();
        let actions = self.fams[i].router.handle(input, now);
        self.execute(i, actions).await;
    }

    async fn execute(&mut self, i: usize, actions: Vec<Action>) {
        let mut changed = false;
        for a in actions {
            match a {
                Action::SendAdvert { priority } => self.send_advert(i, priority).await,
                Action::AddVips => self.add_vips(i).await,
                Action::RemoveVips => self.remove_vips(i).await,
                Action::Announce => self.announce(i).await,
                Action::Timer(_) => {}
                Action::Dropped(r) => {
                    self.sh
                        .metrics
                        .drop(&self.cfg.name, self.fams[i].label, r.as_str())
                }
                Action::StateChanged { from, to, reason } => {
                    let f = &mut self.fams[i];
                    f.transitions += 1;
                    f.since = SystemTime::now();
                    changed = true;
                    tracing::info!(instance = %self.cfg.name, family = f.label, vrid = self.cfg.vrid,
                        %from, %to, %reason, master = ?f.router.master(), "state changed");
                    notify::spawn(
                        &self.cfg,
                        f.label,
                        from.as_str(),
                        to.as_str(),
                        &self.sh.metrics,
                    );
                    let _ = self.sh.transitions.send(super::Transition {
                        instance: self.cfg.name.clone(),
                        family: f.label,
                        vrid: self.cfg.vrid,
                        from,
                        to,
                        reason,
                    });
                    let m = &self.sh.metrics;
                    m.transitions
                        .get_or_create(&Metrics::router(&self.cfg.name, f.label))
                        .inc();
                    m.set_state(&self.cfg.name, f.label, to.as_str());
                }
            }
        }
        let f = &self.fams[i];
        f.priority_gauge
            .set(i64::from(f.router.effective_priority()));
        if changed {
            tracing::debug!(instance = %self.cfg.name, "state changed: publishing status");
        }
        self.publish_if_changed();
    }

    async fn send_advert(&mut self, i: usize, priority: u8) {
        let f = &self.fams[i];
        let addresses: Vec<IpAddr> = self
            .cfg
            .vips
            .iter()
            .map(|v| v.addr)
            .filter(|a| a.is_ipv4() == (f.family == Family::V4))
            .collect();
        let advert = Advert {
            version: version_of(&self.cfg),
            vrid: self.cfg.vrid,
            priority,
            interval_cs: interval_cs(&self.cfg),
            addresses,
            auth: auth_of(&self.cfg),
        };
        let form = if self.cfg.v3_checksum_pseudo_header || f.family == Family::V6 {
            ChecksumForm::PseudoHeader
        } else {
            ChecksumForm::MessageOnly
        };
        let peers: Vec<IpAddr> = self
            .cfg
            .unicast_peers
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == (f.family == Family::V4))
            .collect();
        let dsts = if !self.cfg.unicast {
            vec![if f.family == Family::V4 {
                MCAST_V4
            } else {
                MCAST_V6
            }]
        } else {
            peers
        };
        for dst in dsts {
            match packet::encode(&advert, f.primary, dst, form) {
                Ok(bytes) => match f.socket.send_to(&bytes, dst).await {
                    Ok(_) => {
                        f.sent.inc();
                    }
                    Err(e) => {
                        tracing::warn!(instance = %self.cfg.name, %dst, error = %e, "advert not sent")
                    }
                },
                Err(e) => {
                    tracing::error!(instance = %self.cfg.name, error = %e, "advert not encodable")
                }
            }
        }
    }

    fn family_vips(&self, i: usize) -> Vec<edgevip_config::Vip> {
        let v4 = self.fams[i].family == Family::V4;
        self.cfg
            .vips
            .iter()
            .filter(|v| v.addr.is_ipv4() == v4)
            .cloned()
            .collect()
    }

    async fn add_vips(&mut self, i: usize) {
        for v in self.family_vips(i) {
            if let Err(e) = self
                .sh
                .netlink
                .add_vip(self.link.index, v.addr, v.prefix_len)
                .await
            {
                self.vip_error("add", v.addr, &e.to_string());
            }
        }
    }

    async fn remove_vips(&mut self, i: usize) {
        if let Some(a) = self.fams[i].announcing.take() {
            a.abort();
        }
        for v in self.family_vips(i) {
            if let Err(e) = self
                .sh
                .netlink
                .del_vip(self.link.index, v.addr, v.prefix_len)
                .await
            {
                self.vip_error("remove", v.addr, &e.to_string());
            }
        }
    }

    fn vip_error(&self, op: &str, vip: IpAddr, e: &str) {
        tracing::error!(instance = %self.cfg.name, %vip, op, error = %e, "VIP operation failed");
        self.sh
            .metrics
            .vip_errors
            .get_or_create(&crate::metrics::VipOpLabels {
                instance: self.cfg.name.clone(),
                op: op.into(),
            })
            .inc();
    }

    /// A burst of gratuitous ARP / unsolicited NA, then an optional periodic refresh,
    /// in the background so the protocol loop never waits on it.
    /// A burst of gratuitous ARP / unsolicited NA, then an optional periodic refresh. The
    /// first round goes out before anything else (in particular before our advert), so a
    /// master handing over to us releases the VIPs only after hosts were told the new MAC;
    /// the rest runs in the background so the protocol loop never waits on it.
    async fn announce(&mut self, i: usize) {
        let vips: Vec<IpAddr> = self.family_vips(i).iter().map(|v| v.addr).collect();
        let ann = self.announcer.clone();
        let a = self.cfg.announce.clone();
        let name = self.cfg.name.clone();
        let metrics = self.sh.metrics.clone();
        let label = self.fams[i].label;
        let round = async move |ann: &Announcer| {
            for vip in &vips {
                if let Err(e) = ann.announce(*vip).await {
                    tracing::warn!(instance = %name, %vip, error = %e, "announcement failed");
                }
            }
            metrics
                .announcements
                .get_or_create(&Metrics::router(&name, label))
                .inc();
        };
        round(&ann).await;
        let handle = tokio::spawn(async move {
            let mut done = 1u32;
            loop {
                let pause = if done < a.count {
                    a.interval
                } else if !a.refresh.is_zero() {
                    a.refresh
                } else {
                    break;
                };
                tokio::time::sleep(pause).await;
                round(&ann).await;
                done = done.saturating_add(1);
            }
        });
        if let Some(old) = self.fams[i].announcing.replace(handle) {
            old.abort();
        }
    }

    async fn update(&mut self, new: Instance) {
        let old_vips = self.cfg.vips.clone();
        self.cfg = new;
        let now = self.sh.clock.now();
        for i in 0..self.fams.len() {
            let rcfg = router_config(&self.cfg, self.fams[i].primary);
            let actions = self.fams[i].router.reconfigure(rcfg, now);
            self.execute(i, actions).await;
            if self.fams[i].router.holds_vips() {
                // Add new VIPs (and announce them), drop removed ones; keep the rest untouched.
                let v4 = self.fams[i].family == Family::V4;
                let removed = old_vips
                    .iter()
                    .filter(|v| v.addr.is_ipv4() == v4 && !self.cfg.vips.contains(v));
                for v in removed {
                    if let Err(e) = self
                        .sh
                        .netlink
                        .del_vip(self.link.index, v.addr, v.prefix_len)
                        .await
                    {
                        self.vip_error("remove", v.addr, &e.to_string());
                    }
                }
                let added: Vec<_> = self
                    .family_vips(i)
                    .into_iter()
                    .filter(|v| !old_vips.contains(v))
                    .collect();
                for v in &added {
                    if let Err(e) = self
                        .sh
                        .netlink
                        .add_vip(self.link.index, v.addr, v.prefix_len)
                        .await
                    {
                        self.vip_error("add", v.addr, &e.to_string());
                    }
                }
                if !added.is_empty() {
                    self.announce(i).await;
                }
            }
        }
        self.checks.update(&self.cfg.health_checks);
        let links = self.sh.links.subscribe().borrow().clone();
        self.retrack(&links, "reconfigured").await;
        let p = self.effective_priority();
        for i in 0..self.fams.len() {
            self.feed(i, Input::PriorityChanged(p)).await;
        }
        self.publish();
    }

    fn track_state(&self, links: &super::links::LinkMap) -> (i32, bool) {
        // An interface we cannot see counts as down: tracking must fail safe.
        let (weight, fault) = health::tally(
            self.cfg
                .track_interfaces
                .iter()
                .map(|t| (links.get(&t.name).copied().unwrap_or(false), t.weight)),
        );
        let (w, f) = health::weight_and_fault(&self.cfg.health_checks, &self.checks.current());
        (weight + w, fault || f)
    }

    fn effective_priority(&self) -> u8 {
        (i32::from(self.cfg.priority) + self.track.0).clamp(1, 254) as u8
    }

    async fn links_changed(&mut self, links: &super::links::LinkMap) {
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
            for i in 0..self.fams.len() {
                self.feed(i, input).await;
            }
        }
        self.retrack(links, "tracked interfaces changed").await;
    }

    /// Re-evaluates tracked interfaces and health checks; feeds a changed fault or priority.
    async fn retrack(&mut self, links: &super::links::LinkMap, why: &str) {
        let track = self.track_state(links);
        if track != self.track {
            let fault_changed = track.1 != self.track.1;
            self.track = track;
            tracing::info!(instance = %self.cfg.name, weight = track.0, fault = track.1, "{why}");
            let p = self.effective_priority();
            for i in 0..self.fams.len() {
                if fault_changed {
                    self.feed(i, Input::TrackFault(track.1)).await;
                }
                self.feed(i, Input::PriorityChanged(p)).await;
            }
        }
    }

    /// What `/status` shows that can change while the config does not.
    fn signature(&self) -> Vec<Visible> {
        self.fams
            .iter()
            .map(|f| {
                (
                    f.router.state(),
                    f.router.master(),
                    f.router.effective_priority(),
                    f.transitions,
                )
            })
            .collect()
    }

    /// Publishes only when something visible changed: building the status (strings,
    /// timestamps) on every advert was most of the daemon's idle CPU.
    fn publish_if_changed(&mut self) {
        let sig = self.signature();
        if self.published.as_ref() != Some(&sig) {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.published = Some(self.signature());
        let routers: Vec<RouterStatus> = self
            .fams
            .iter()
            .map(|f| RouterStatus {
                family: f.label.into(),
                state: f.router.state().as_str().into(),
                effective_priority: f.router.effective_priority(),
                master: f.router.master().map(|a| a.to_string()),
                transitions: f.transitions,
                since: status::rfc3339(f.since),
            })
            .collect();
        let first = routers.first().cloned();
        self.sh.board.set(InstanceStatus {
            name: self.cfg.name.clone(),
            state: first.as_ref().map_or("init".into(), |r| r.state.clone()),
            priority: self.cfg.priority,
            effective_priority: first
                .as_ref()
                .map_or(self.cfg.priority, |r| r.effective_priority),
            master: first.as_ref().and_then(|r| r.master.clone()),
            vips: self
                .cfg
                .vips
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix_len))
                .collect(),
            transitions: self.fams.iter().map(|f| f.transitions).sum(),
            since: first.map_or_else(|| status::rfc3339(SystemTime::now()), |r| r.since),
            interface: self.cfg.interface.clone(),
            vrid: self.cfg.vrid,
            version: if version_of(&self.cfg) == Version::V2 {
                2
            } else {
                3
            },
            routers,
        });
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
) -> Result<IpAddr, String> {
    for _ in 0..50 {
        let addrs = sh
            .netlink
            .addresses(index)
            .await
            .map_err(|e| format!("{}: {e}", cfg.interface))?;
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
            .map_err(|e| format!("{}: {e}", cfg.interface))?;
        match found {
            Some(a) => return Ok(a),
            None if tentative.is_empty() => break,
            None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    Err(format!(
        "interface {} has no usable {} address",
        cfg.interface,
        family_name(family)
    ))
}

async fn read_loop(
    i: usize,
    socket: Arc<VrrpSocket>,
    tx: mpsc::Sender<(usize, Result<edgevip_netio::Received, String>)>,
) {
    loop {
        let r = socket.recv().await.map_err(|e| e.to_string());
        let failed = r.is_err();
        if tx.send((i, r)).await.is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

fn version_of(cfg: &Instance) -> Version {
    match cfg.version {
        CfgVersion::V2 => Version::V2,
        CfgVersion::V3 => Version::V3,
    }
}

fn interval_cs(cfg: &Instance) -> u16 {
    (cfg.advert_interval.as_millis() / 10) as u16
}

fn auth_of(cfg: &Instance) -> Auth {
    match (&cfg.auth_pass, version_of(cfg)) {
        (Some(p), Version::V2) => {
            let mut b = [0u8; 8];
            let src = p.as_bytes();
            b[..src.len().min(8)].copy_from_slice(&src[..src.len().min(8)]);
            Auth::Simple(b)
        }
        _ => Auth::None,
    }
}

fn router_config(cfg: &Instance, primary: IpAddr) -> router::Config {
    router::Config {
        vrid: cfg.vrid,
        version: version_of(cfg),
        priority: cfg.priority,
        advert_interval_cs: interval_cs(cfg),
        preempt: cfg.preempt,
        preempt_delay: cfg.preempt_delay,
        primary,
        handoff: cfg.handoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(yaml: &str) -> Instance {
        edgevip_config::parse(yaml).unwrap().instances.remove(0)
    }

    const BASE: &str = "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, vips: [192.0.2.100/24]}\n";

    #[test]
    fn priority_vips_and_preemption_change_in_place() {
        let old = inst(BASE);
        for new in [
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 120, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, vips: [192.0.2.100/24, 192.0.2.101/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, preempt: false, vips: [192.0.2.100/24]}\n",
        ] {
            assert!(soft_change(&old, &inst(new)), "{new}");
        }
    }

    #[test]
    fn identity_changes_restart_the_instance() {
        let old = inst(BASE);
        for new in [
            "instances:\n  - {name: a, interface: eth1, vrid: 51, priority: 100, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 52, priority: 100, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, advert_interval: 2s, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 255, vips: [192.0.2.100/24]}\n",
            "instances:\n  - {name: a, interface: eth0, vrid: 51, priority: 100, vips: [192.0.2.100/24, \"2001:db8::1\"]}\n",
        ] {
            assert!(!soft_change(&old, &inst(new)), "{new}");
        }
    }
}
