//! The state machine of one virtual router (RFC 5798 §6 / RFC 9568 §6, RFC 3768 §6 for v2),
//! for one VRID and one address family.
//!
//! It is a pure function of `(state, input, now) -> actions`: the caller feeds inputs
//! (adverts it has already checked for TTL and authentication, timer expiries, link and
//! tracking events) and carries out the returned actions in order. It owns exactly one timer:
//! every call may end with `Action::Timer(deadline)`, which replaces the previous deadline.
//!
//! Extensions over the RFC, each for a reason an operator would see:
//! - make-before-break handoff: on a graceful shutdown the master sends priority 0 but keeps
//!   the VIPs until it hears the new master (bounded), so a planned restart loses nothing;
//! - a fault state (link down, failed tracking) that leaves master and stays silent;
//! - a master that hears a lower-priority advert answers at once and re-announces the VIPs,
//!   so caches that learned the loser's MAC during a split brain are corrected.

use std::net::IpAddr;
use std::time::Duration;

use crate::packet::{Auth, Version};
use crate::time::Instant;

mod accept;
pub use accept::{Accepted, Datagram, DropReason, Link};

/// The priority of the address owner, which takes over at once and never changes.
pub const OWNER_PRIORITY: u8 = 255;

/// Static parameters of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub vrid: u8,
    pub version: Version,
    /// Configured priority, 1..=255. 255 makes this router the address owner.
    pub priority: u8,
    /// Our Advertisement_Interval in centiseconds (v2: a multiple of 100).
    pub advert_interval_cs: u16,
    pub preempt: bool,
    /// After startup (or recovery from fault), lower-priority masters are tolerated this
    /// long before we preempt them.
    pub preempt_delay: Duration,
    /// Our primary address on the link: breaks priority ties, and filters our own adverts.
    pub primary: IpAddr,
    /// Make-before-break on graceful shutdown.
    pub handoff: bool,
    /// VRRPv2 authentication (`Auth::None` for v3): adverts must carry the same.
    pub auth: Auth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened; carried in `Action::StateChanged` for logs, events and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Startup,
    /// Priority 255: the address owner takes over at once.
    Owner,
    /// Master_Down_Timer expired: no advert from a master for Master_Down_Interval.
    MasterDown,
    /// The master announced priority 0 and we waited only Skew_Time.
    MasterReleased,
    /// An advert with a higher priority (or equal priority, higher address) arrived.
    HigherPriority,
    Shutdown,
    /// Graceful shutdown: the new master was heard, our VIPs are released.
    HandoffComplete,
    /// Graceful shutdown: no new master was heard within the bound; released anyway.
    HandoffTimeout,
    InterfaceDown,
    InterfaceUp,
    TrackFailed,
    TrackRecovered,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::Owner => "address-owner",
            Reason::MasterDown => "master-down",
            Reason::MasterReleased => "master-released",
            Reason::HigherPriority => "higher-priority",
            Reason::Shutdown => "shutdown",
            Reason::HandoffComplete => "handoff-complete",
            Reason::HandoffTimeout => "handoff-timeout",
            Reason::InterfaceDown => "interface-down",
            Reason::InterfaceUp => "interface-up",
            Reason::TrackFailed => "track-failed",
            Reason::TrackRecovered => "track-recovered",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of an accepted advert (see `Router::accept`) that the state machine needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub src: IpAddr,
    pub version: Version,
    pub priority: u8,
    pub interval_cs: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Startup,
    /// Graceful stop (SIGTERM, removed instance).
    Shutdown,
    Advert(Heard),
    /// The deadline of the last `Action::Timer` was reached.
    Timer,
    /// Effective priority after tracking weights; ignored for the address owner.
    PriorityChanged(u8),
    InterfaceUp,
    InterfaceDown,
    /// A tracked object failed (`true`) or recovered (`false`).
    TrackFault(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority and our own interval.
    SendAdvert {
        priority: u8,
    },
    AddVips,
    RemoveVips,
    /// Gratuitous ARP / unsolicited NA for every VIP (the caller repeats as configured).
    Announce,
    /// The one timer: fire `Input::Timer` at this instant; `None` disarms.
    Timer(Option<Instant>),
    StateChanged {
        from: State,
        to: State,
        reason: Reason,
    },
}

/// One virtual router.
#[derive(Debug, Clone)]
pub struct Router {
    cfg: Config,
    state: State,
    effective_priority: u8,
    /// Master_Adver_Interval: ours as master, learned from the master's adverts as backup (v3).
    master_interval: Duration,
    deadline: Option<Instant>,
    link_up: bool,
    track_failed: bool,
    /// Lower-priority masters are not preempted before this instant.
    preempt_after: Instant,
    /// Some while a graceful shutdown waits for the new master: release by this instant.
    releasing_until: Option<Instant>,
    /// The last Master_Down_Timer was set by a priority-0 advert.
    master_released: bool,
    /// Primary address of the router we believe is master.
    master: Option<IpAddr>,
    /// When we last answered a lower-priority (or priority-0) advert as master, and last
    /// re-announced because of one: both are rate-limited so a flood of such adverts
    /// cannot make us an amplifier.
    answered_at: Option<Instant>,
    reannounced_at: Option<Instant>,
}

/// Re-announcements caused by lower-priority adverts: at most one per this (keepalived's
/// `garp_lower_prio_repeat` idea; a healed split brain needs one, not one per advert).
pub const REANNOUNCE_MIN_GAP: Duration = Duration::from_secs(1);

/// The longest Master_Adver_Interval a backup learns: ten of its own, at least 1 s. One
/// advert claiming 40.95 s would otherwise leave the VRID without a master for two minutes
/// after that master dies.
fn max_learned_interval(own: Duration) -> Duration {
    (own * 10).max(Duration::from_secs(1))
}

impl Router {
    pub fn new(cfg: Config) -> Self {
        let own = cs(cfg.advert_interval_cs);
        Router {
            effective_priority: cfg.priority,
            cfg,
            state: State::Init,
            master_interval: own,
            deadline: None,
            link_up: true,
            track_failed: false,
            preempt_after: Instant::ZERO,
            releasing_until: None,
            master_released: false,
            master: None,
            answered_at: None,
            reannounced_at: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// Primary address of the current master as far as we know (ours when master).
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// True while a graceful shutdown keeps the VIPs until the new master is heard.
    pub fn is_releasing(&self) -> bool {
        self.releasing_until.is_some()
    }

    /// True while this router holds (or should hold) the VIPs.
    pub fn holds_vips(&self) -> bool {
        self.state == State::Master
    }

    /// Master_Adver_Interval currently in use (learned from the master on v3 backups).
    pub fn master_interval(&self) -> Duration {
        self.master_interval
    }

    /// Skew_Time: v3 `(256 - priority) * Master_Adver_Interval / 256`, v2 `(256 - priority) / 256` s.
    /// Kept in nanoseconds: truncating to whole milliseconds would make neighbouring
    /// priorities time out together.
    pub fn skew_time(&self) -> Duration {
        let base = match self.cfg.version {
            Version::V3 => self.master_interval,
            Version::V2 => Duration::from_secs(1),
        };
        base * (256 - u32::from(self.effective_priority)) / 256
    }

    /// Master_Down_Interval: `3 * Master_Adver_Interval + Skew_Time`.
    pub fn master_down_interval(&self) -> Duration {
        self.master_interval * 3 + self.skew_time()
    }

    fn handoff_bound(&self) -> Duration {
        handoff_bound(self.cfg.advert_interval_cs)
    }

    fn own_interval(&self) -> Duration {
        cs(self.cfg.advert_interval_cs)
    }

    /// v3 backups take the master's interval (RFC 5798 §6.4.2), bounded; v2 requires equal
    /// intervals (checked on acceptance).
    fn learn_interval(&mut self, heard: &Heard) {
        if self.cfg.version == Version::V3 {
            let own = self.own_interval();
            self.master_interval = cs(heard.interval_cs).min(max_learned_interval(own));
        }
    }

    /// Whether an answer to a lower-priority advert is due at `now`.
    fn due(last: Option<Instant>, gap: Duration, now: Instant) -> bool {
        last.is_none_or(|t| now.saturating_since(t) >= gap)
    }

    /// Whether `new` can replace the running configuration without leaving the current
    /// state: everything but the identity of the virtual router (VRID, version, interval,
    /// primary address) and ownership (priority 255 behaves differently from the start).
    /// Authentication, priority, preemption and handoff change in place.
    pub fn can_reconfigure(&self, new: &Config) -> bool {
        let old = &self.cfg;
        old.vrid == new.vrid
            && old.version == new.version
            && old.advert_interval_cs == new.advert_interval_cs
            && old.primary == new.primary
            && (old.priority == OWNER_PRIORITY) == (new.priority == OWNER_PRIORITY)
    }

    /// Applies a configuration reload in place (see `can_reconfigure`): the state is kept,
    /// and a new base priority takes effect as `Input::PriorityChanged` would. The caller
    /// follows with `PriorityChanged` when tracking adjusts the priority.
    pub fn reconfigure(&mut self, new: Config, now: Instant) -> Vec<Action> {
        debug_assert!(self.can_reconfigure(&new));
        let priority = new.priority;
        self.cfg = new;
        let mut out = Vec::new();
        self.on_priority(priority, now, &mut out);
        out
    }

    /// Feed one input at `now`; returns the actions to carry out, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Startup => self.on_startup(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
            Input::Advert(heard) => self.on_advert(heard, now, &mut out),
            Input::Timer => self.on_timer(now, &mut out),
            Input::PriorityChanged(p) => self.on_priority(p, now, &mut out),
            Input::InterfaceDown => {
                self.link_up = false;
                self.enter_fault(Reason::InterfaceDown, false, &mut out);
            }
            Input::InterfaceUp => {
                self.link_up = true;
                self.leave_fault(Reason::InterfaceUp, now, &mut out);
            }
            Input::TrackFault(true) => {
                self.track_failed = true;
                self.enter_fault(Reason::TrackFailed, true, &mut out);
            }
            Input::TrackFault(false) => {
                self.track_failed = false;
                self.leave_fault(Reason::TrackRecovered, now, &mut out);
            }
        }
        out
    }

    fn on_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Init || self.releasing_until.is_some() {
            return;
        }
        self.preempt_after = now + self.cfg.preempt_delay;
        if !self.link_up || self.track_failed {
            let reason = if self.link_up {
                Reason::TrackFailed
            } else {
                Reason::InterfaceDown
            };
            self.change_state(State::Fault, reason, out);
            self.set_timer(None, out);
            return;
        }
        self.join(Reason::Startup, now, out);
    }

    /// RFC §6.4.1: the owner becomes master at once, everyone else waits as backup.
    fn join(&mut self, reason: Reason, now: Instant, out: &mut Vec<Action>) {
        if self.cfg.priority == OWNER_PRIORITY {
            self.become_master(Reason::Owner, now, out);
        } else {
            self.master_interval = self.own_interval();
            self.master_released = false;
            self.master = None;
            self.change_state(State::Backup, reason, out);
            self.set_timer(Some(now + self.master_down_interval()), out);
        }
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Master if self.releasing_until.is_none() => {
                out.push(Action::SendAdvert { priority: 0 });
                if self.cfg.handoff {
                    let until = now + self.handoff_bound();
                    self.releasing_until = Some(until);
                    self.set_timer(Some((now + self.own_interval()).min(until)), out);
                } else {
                    self.release(Reason::Shutdown, out);
                }
            }
            State::Master => {} // already releasing
            State::Backup | State::Fault => {
                self.change_state(State::Init, Reason::Shutdown, out);
                self.set_timer(None, out);
            }
            State::Init => {}
        }
    }

    /// Leave master for Init: drop the VIPs, stop the timer.
    fn release(&mut self, reason: Reason, out: &mut Vec<Action>) {
        self.releasing_until = None;
        out.push(Action::RemoveVips);
        self.master = None;
        self.change_state(State::Init, reason, out);
        self.set_timer(None, out);
    }

    /// `heard` passed `accept` (or comes from the simulator, which sends only such adverts).
    fn on_advert(&mut self, heard: Heard, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Backup => self.backup_heard(heard, now, out),
            State::Master => self.master_heard(heard, now, out),
            // Init and Fault stay silent and deaf.
            State::Init | State::Fault => {}
        }
    }

    /// RFC §6.4.2, Backup receiving an advert.
    fn backup_heard(&mut self, heard: Heard, now: Instant, out: &mut Vec<Action>) {
        if heard.priority == 0 {
            // The master is leaving: take over after Skew_Time only. Its interval is learned
            // here too, so a backup that just started does not skew by its own, longer one.
            self.learn_interval(&heard);
            self.master_released = true;
            self.master = None;
            self.set_timer(Some(now + self.skew_time()), out);
            return;
        }
        let tolerate = !self.cfg.preempt
            || heard.priority >= self.effective_priority
            || now < self.preempt_after;
        self.master = Some(heard.src);
        if tolerate {
            self.learn_interval(&heard);
            self.master_released = false;
            self.set_timer(Some(now + self.master_down_interval()), out);
        }
        // else: discard; Master_Down_Timer runs out and we preempt.
    }

    /// RFC §6.4.3, Master receiving an advert.
    fn master_heard(&mut self, heard: Heard, now: Instant, out: &mut Vec<Action>) {
        if self.releasing_until.is_some() {
            // Graceful shutdown: any live advert means a new master has taken over.
            if heard.priority != 0 {
                self.release(Reason::HandoffComplete, out);
            }
            return;
        }
        // The address owner never steps down (RFC 5798 §6.1: it always holds its addresses).
        let wins = self.cfg.priority != OWNER_PRIORITY
            && heard.priority != 0
            && (heard.priority > self.effective_priority
                || (heard.priority == self.effective_priority
                    && addr_gt(heard.src, self.cfg.primary)));
        if !wins {
            // A leaving router (priority 0) or a lower-priority master (a healed partition):
            // assert ourselves now, at most once per interval, and re-announce, at most once
            // per REANNOUNCE_MIN_GAP, so hosts that learned the loser's MAC come back.
            if Self::due(self.answered_at, self.own_interval(), now) {
                self.answered_at = Some(now);
                out.push(Action::SendAdvert {
                    priority: self.effective_priority,
                });
                if heard.priority != 0 && Self::due(self.reannounced_at, REANNOUNCE_MIN_GAP, now) {
                    self.reannounced_at = Some(now);
                    out.push(Action::Announce);
                }
                self.set_timer(Some(now + self.own_interval()), out);
            }
            return;
        }
        self.learn_interval(&heard);
        out.push(Action::RemoveVips);
        self.master = Some(heard.src);
        self.master_released = false;
        self.change_state(State::Backup, Reason::HigherPriority, out);
        self.set_timer(Some(now + self.master_down_interval()), out);
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.deadline {
            Some(d) if now >= d => {}
            _ => return, // stale or early wake-up
        }
        match self.state {
            State::Backup => {
                let reason = if self.master_released {
                    Reason::MasterReleased
                } else {
                    Reason::MasterDown
                };
                self.become_master(reason, now, out);
            }
            State::Master => match self.releasing_until {
                Some(until) if now >= until => self.release(Reason::HandoffTimeout, out),
                Some(until) => {
                    // Repeat priority 0 in case a backup missed it.
                    out.push(Action::SendAdvert { priority: 0 });
                    self.set_timer(Some((now + self.own_interval()).min(until)), out);
                }
                None => {
                    out.push(Action::SendAdvert {
                        priority: self.effective_priority,
                    });
                    self.set_timer(Some(now + self.own_interval()), out);
                }
            },
            State::Init | State::Fault => self.set_timer(None, out),
        }
    }

    /// Take the VIPs. Addresses and announcements go first, the advert last, so a master we
    /// preempt (or one handing off) releases only after our announcement is on the wire.
    fn become_master(&mut self, reason: Reason, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::AddVips);
        out.push(Action::Announce);
        out.push(Action::SendAdvert {
            priority: self.effective_priority,
        });
        self.master_interval = self.own_interval();
        self.master_released = false;
        self.master = Some(self.cfg.primary);
        self.change_state(State::Master, reason, out);
        self.set_timer(Some(now + self.own_interval()), out);
    }

    fn on_priority(&mut self, p: u8, now: Instant, out: &mut Vec<Action>) {
        if self.cfg.priority == OWNER_PRIORITY {
            return; // the owner's priority never moves (RFC §6.1)
        }
        let p = p.clamp(1, OWNER_PRIORITY - 1);
        if p == self.effective_priority {
            return;
        }
        self.effective_priority = p;
        if self.state == State::Master && self.releasing_until.is_none() {
            // Tell the backups now rather than at the next interval.
            out.push(Action::SendAdvert { priority: p });
            self.set_timer(Some(now + self.own_interval()), out);
        }
    }

    /// Link down (`announce_release` false: nothing can be sent) or tracking failure
    /// (priority 0 first, so backups wait only Skew_Time).
    fn enter_fault(&mut self, reason: Reason, announce_release: bool, out: &mut Vec<Action>) {
        match self.state {
            State::Init | State::Fault => return, // not running, or already silent
            State::Master => {
                if announce_release && self.releasing_until.is_none() {
                    out.push(Action::SendAdvert { priority: 0 });
                }
                let was_releasing = self.releasing_until.take().is_some();
                out.push(Action::RemoveVips);
                if was_releasing {
                    // A graceful stop in progress ends here, not in Fault.
                    self.master = None;
                    self.change_state(State::Init, Reason::Shutdown, out);
                    self.set_timer(None, out);
                    return;
                }
            }
            _ => {}
        }
        self.master = None;
        self.change_state(State::Fault, reason, out);
        self.set_timer(None, out);
    }

    fn leave_fault(&mut self, reason: Reason, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Fault || !self.link_up || self.track_failed {
            return;
        }
        self.preempt_after = now + self.cfg.preempt_delay;
        self.join(reason, now, out);
    }

    fn change_state(&mut self, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        out.push(Action::StateChanged { from, to, reason });
    }

    fn set_timer(&mut self, at: Option<Instant>, out: &mut Vec<Action>) {
        self.deadline = at;
        out.push(Action::Timer(at));
    }
}

/// Bound of a graceful handoff at an advert interval of `interval_cs`: the longest
/// Master_Down_Interval any backup can have (skew < one interval), so a backup that missed
/// our priority 0 still takes over before we release. The daemon waits this plus its I/O.
pub fn handoff_bound(interval_cs: u16) -> Duration {
    cs(interval_cs) * 4
}

fn cs(centis: u16) -> Duration {
    Duration::from_millis(u64::from(centis) * 10)
}

/// Tie-break (RFC §6.4.3): the higher primary address wins, compared as unsigned integers.
fn addr_gt(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) > u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) > u128::from(b),
        // Families never mix within one virtual router; order them deterministically anyway.
        (IpAddr::V6(_), IpAddr::V4(_)) => true,
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

#[cfg(test)]
mod tests;
