//! A deterministic simulator: N virtual routers of one or more VRIDs on a simulated LAN
//! with loss, delay, duplication, partitions, crashes, graceful restarts, link and priority
//! changes, all driven by a seeded RNG and a virtual clock. The same seed always replays the
//! same run, so a failing seed is a reproducible bug report.
//!
//! `run_seed` builds a random scenario in phases: chaos (random faults), then calm (faults
//! healed, no loss) long enough for any election to settle, a check of the invariants, a
//! quiet window that must see no transition, and planned operations (graceful restarts,
//! priority changes) during which no group may ever be without a VIP holder.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::packet::{Auth, Version};
use crate::router::{Action, Config, Heard, Input, OWNER_PRIORITY, Router, State};
use crate::time::Instant;

/// SplitMix64: tiny, fast and good enough to drive scenarios; no dependency needed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(per_mille)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// Network behaviour, changed by scenario events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub loss_per_mille: u32,
    pub dup_per_mille: u32,
    pub delay_min: Duration,
    pub delay_max: Duration,
}

impl Net {
    pub const CALM: Net = Net {
        loss_per_mille: 0,
        dup_per_mille: 0,
        delay_min: Duration::from_micros(50),
        delay_max: Duration::from_micros(500),
    };
}

/// Scenario events that the harness (or a test) injects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Start a stopped node's process (fresh router state).
    Start(usize),
    /// SIGKILL or power loss: state gone, VIPs gone with the host.
    Crash(usize),
    /// SIGTERM: graceful shutdown (make-before-break if configured).
    Stop(usize),
    LinkDown(usize),
    LinkUp(usize),
    TrackFault(usize, bool),
    Priority(usize, u8),
    /// Put a node on its own network segment (0 = the main one).
    Segment(usize, u32),
    Heal,
    SetNet(Net),
}

#[derive(Debug)]
enum Event {
    Op(Op),
    Deliver { to: usize, heard: Heard },
    Timer { node: usize, generation: u64 },
}

struct Node {
    group: usize,
    cfg: Config,
    router: Router,
    /// The process runs (started, not crashed, not finished stopping).
    running: bool,
    stopping: bool,
    link_up: bool,
    segment: u32,
    holds_vips: bool,
    timer_generation: u64,
    started_at: Instant,
    stop_requested_at: Option<Instant>,
}

impl Node {
    /// A candidate for mastership: running, not leaving, link up, not faulted.
    fn live(&self) -> bool {
        self.running && !self.stopping && self.link_up && self.router.state() != State::Fault
    }
}

/// The simulated LAN and its routers.
pub struct Sim {
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: std::collections::HashMap<u64, Event>,
    nodes: Vec<Node>,
    net: Net,
    rng: Rng,
    trace: Option<Vec<String>>,
    /// Events processed so far.
    pub events: u64,
    /// State transitions so far, all routers.
    pub transitions: u64,
    /// While set, a group may never lose its last VIP holder while it has a live router.
    pub guard_no_gap: bool,
    violations: Vec<String>,
}

impl Sim {
    pub fn new(seed: u64, trace: bool) -> Self {
        Sim {
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            pending: std::collections::HashMap::new(),
            nodes: Vec::new(),
            net: Net::CALM,
            rng: Rng::new(seed ^ 0x5EED),
            trace: trace.then(Vec::new),
            events: 0,
            transitions: 0,
            guard_no_gap: false,
            violations: Vec::new(),
        }
    }

    /// Adds a (stopped) router to `group` and returns its index.
    pub fn add_node(&mut self, group: usize, cfg: Config) -> usize {
        self.nodes.push(Node {
            group,
            router: Router::new(cfg.clone()),
            cfg,
            running: false,
            stopping: false,
            link_up: true,
            segment: 0,
            holds_vips: false,
            timer_generation: 0,
            started_at: Instant::ZERO,
            stop_requested_at: None,
        });
        self.nodes.len() - 1
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn router(&self, node: usize) -> &Router {
        &self.nodes[node].router
    }

    pub fn is_running(&self, node: usize) -> bool {
        self.nodes[node].running
    }

    pub fn holds_vips(&self, node: usize) -> bool {
        self.nodes[node].holds_vips
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Schedules `op` at `at`.
    pub fn schedule(&mut self, at: Instant, op: Op) {
        self.push(at, Event::Op(op));
    }

    fn push(&mut self, at: Instant, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.pending.insert(self.seq, ev);
    }

    fn log(&mut self, msg: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("{:>12} {}", self.now.to_string(), msg()));
        }
    }

    /// Processes every event up to and including `until`; the clock ends at `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > until {
                break;
            }
            self.queue.pop();
            let ev = self.pending.remove(&seq).expect("event pending");
            self.now = at;
            self.events += 1;
            self.dispatch(ev);
        }
        self.now = until;
    }

    fn dispatch(&mut self, ev: Event) {
        match ev {
            Event::Op(op) => self.apply(op),
            Event::Deliver { to, heard } => {
                let n = &self.nodes[to];
                if n.running && n.link_up {
                    self.feed(to, Input::Advert(heard));
                }
            }
            Event::Timer { node, generation } => {
                let n = &self.nodes[node];
                if n.running && n.timer_generation == generation {
                    self.feed(node, Input::Timer);
                }
            }
        }
    }

    fn apply(&mut self, op: Op) {
        self.log(|| format!("op {op:?}"));
        match op {
            Op::Start(i) => {
                let n = &mut self.nodes[i];
                if n.running {
                    return;
                }
                n.router = Router::new(n.cfg.clone());
                n.running = true;
                n.stopping = false;
                n.started_at = self.now;
                n.timer_generation += 1;
                if !n.link_up {
                    self.feed(i, Input::InterfaceDown);
                }
                self.feed(i, Input::Startup);
            }
            Op::Crash(i) => {
                let n = &mut self.nodes[i];
                n.running = false;
                n.stopping = false;
                n.holds_vips = false;
                n.timer_generation += 1;
            }
            Op::Stop(i) => {
                if self.nodes[i].running && !self.nodes[i].stopping {
                    self.nodes[i].stopping = true;
                    self.nodes[i].stop_requested_at = Some(self.now);
                    self.feed(i, Input::Shutdown);
                }
            }
            Op::LinkDown(i) => {
                if self.nodes[i].link_up {
                    self.nodes[i].link_up = false;
                    self.feed_if_running(i, Input::InterfaceDown);
                }
            }
            Op::LinkUp(i) => {
                if !self.nodes[i].link_up {
                    self.nodes[i].link_up = true;
                    self.feed_if_running(i, Input::InterfaceUp);
                }
            }
            Op::TrackFault(i, failed) => self.feed_if_running(i, Input::TrackFault(failed)),
            Op::Priority(i, p) => self.feed_if_running(i, Input::PriorityChanged(p)),
            Op::Segment(i, s) => self.nodes[i].segment = s,
            Op::Heal => self.nodes.iter_mut().for_each(|n| n.segment = 0),
            Op::SetNet(net) => self.net = net,
        }
    }

    fn feed_if_running(&mut self, i: usize, input: Input) {
        if self.nodes[i].running {
            self.feed(i, input);
        }
    }

    /// Hands one input to a router and carries out its actions on the simulated world.
    fn feed(&mut self, i: usize, input: Input) {
        let now = self.now;
        let actions = self.nodes[i].router.handle(input, now);
        for a in actions {
            match a {
                Action::SendAdvert { priority } => self.broadcast(i, priority),
                Action::AddVips => self.nodes[i].holds_vips = true,
                Action::RemoveVips => {
                    self.nodes[i].holds_vips = false;
                    self.check_gap(i);
                }
                Action::Announce => {}
                Action::Timer(at) => {
                    let n = &mut self.nodes[i];
                    n.timer_generation += 1;
                    let generation = n.timer_generation;
                    if let Some(at) = at {
                        self.push(
                            at,
                            Event::Timer {
                                node: i,
                                generation,
                            },
                        );
                    }
                }
                Action::StateChanged { from, to, reason } => {
                    self.transitions += 1;
                    self.log(|| format!("n{i} {from} -> {to} ({reason})"));
                }
            }
        }
        let n = &mut self.nodes[i];
        if n.stopping && n.router.state() == State::Init {
            n.stopping = false;
            n.running = false;
            n.timer_generation += 1;
        }
    }

    fn broadcast(&mut self, from: usize, priority: u8) {
        let sender = &self.nodes[from];
        if !sender.link_up {
            return;
        }
        let heard = Heard {
            src: sender.cfg.primary,
            version: sender.cfg.version,
            priority,
            interval_cs: sender.cfg.advert_interval_cs,
        };
        let (group, segment) = (sender.group, sender.segment);
        self.log(|| format!("n{from} sends prio {priority}"));
        for to in 0..self.nodes.len() {
            let n = &self.nodes[to];
            // The caller demultiplexes by VRID, so only the group's routers see it.
            if to == from || n.group != group || n.segment != segment {
                continue;
            }
            if self.rng.chance(self.net.loss_per_mille) {
                continue;
            }
            let copies = if self.rng.chance(self.net.dup_per_mille) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let lo = self.net.delay_min.as_nanos() as u64;
                let hi = self.net.delay_max.as_nanos() as u64;
                let delay = Duration::from_nanos(self.rng.range(lo, hi.max(lo)));
                self.push(self.now + delay, Event::Deliver { to, heard });
            }
        }
    }

    /// Make-before-break: in calm periods a group is never without a VIP holder while a
    /// router that could take over exists. For a graceful stop, that is a router already
    /// running when the stop began (one started near the end of the bounded handoff may
    /// legitimately be too late).
    fn check_gap(&mut self, released_by: usize) {
        if !self.guard_no_gap {
            return;
        }
        let g = self.nodes[released_by].group;
        let since = self.nodes[released_by]
            .stop_requested_at
            .filter(|_| self.nodes[released_by].stopping);
        let members = || {
            self.nodes
                .iter()
                .enumerate()
                .filter(move |(_, n)| n.group == g)
        };
        let holders = members().filter(|(_, n)| n.running && n.holds_vips).count();
        let live = members()
            .any(|(j, n)| j != released_by && n.live() && since.is_none_or(|s| n.started_at <= s));
        if holders == 0 && live {
            let msg = format!(
                "t={} group {g}: n{released_by} released the VIPs while no other router held them",
                self.now
            );
            self.log(|| msg.clone());
            self.violations.push(msg);
        }
    }

    /// The invariants of a settled network, for every group.
    pub fn check_settled(&self) -> Result<(), String> {
        let groups = self
            .nodes
            .iter()
            .map(|n| n.group)
            .max()
            .map_or(0, |g| g + 1);
        for g in 0..groups {
            let members: Vec<(usize, &Node)> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.group == g)
                .collect();
            let live: Vec<&(usize, &Node)> = members.iter().filter(|(_, n)| n.live()).collect();
            let masters: Vec<usize> = live
                .iter()
                .filter(|(_, n)| n.router.state() == State::Master)
                .map(|(i, _)| *i)
                .collect();
            let holders: Vec<usize> = members
                .iter()
                .filter(|(_, n)| n.running && n.holds_vips)
                .map(|(i, _)| *i)
                .collect();
            if live.is_empty() {
                if !holders.is_empty() {
                    return Err(format!(
                        "group {g}: no live router but VIPs held by {holders:?}"
                    ));
                }
                continue;
            }
            if masters.len() != 1 {
                return Err(format!(
                    "group {g}: {} masters {masters:?}, expected 1",
                    masters.len()
                ));
            }
            let m = masters[0];
            if holders != vec![m] {
                return Err(format!(
                    "group {g}: master n{m} but VIP holders {holders:?}"
                ));
            }
            let mp = self.nodes[m].router.effective_priority();
            for (i, n) in &live {
                let p = n.router.effective_priority();
                let preempts = n.cfg.preempt || n.cfg.priority == OWNER_PRIORITY;
                if *i != m && preempts && p > mp {
                    return Err(format!(
                        "group {g}: master n{m} has priority {mp} but preempting n{i} has {p}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What one seed did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub events: u64,
    pub transitions: u64,
    pub checks: u32,
    pub virtual_time: Duration,
}

/// A failing seed, with the trace of its replay.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub what: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} failed: {}", self.seed, self.what)?;
        let skip = self.trace.len().saturating_sub(400);
        if skip > 0 {
            writeln!(f, "... {skip} earlier trace lines omitted")?;
        }
        for line in &self.trace[skip..] {
            writeln!(f, "{line}")?;
        }
        write!(
            f,
            "replay: VRRP_SIM_SEED={} cargo test -p vrrp --test sim_seeds",
            self.seed
        )
    }
}

/// Runs the random scenario of `seed`; on failure, replays it with a trace.
pub fn run_seed(seed: u64) -> Result<Outcome, Failure> {
    match scenario(seed, false) {
        Ok(o) => Ok(o),
        Err(_) => {
            let (what, trace) = match scenario(seed, true) {
                Err((what, trace)) => (what, trace),
                Ok(_) => (
                    "failed once, passed on replay: nondeterminism".into(),
                    Vec::new(),
                ),
            };
            Err(Failure { seed, what, trace })
        }
    }
}

struct Group {
    version: Version,
    base_cs: u16,
    nodes: Vec<usize>,
}

fn scenario(seed: u64, trace: bool) -> Result<Outcome, (String, Vec<String>)> {
    let mut rng = Rng::new(seed);
    let mut sim = Sim::new(seed, trace);
    let groups = build_groups(&mut rng, &mut sim);
    // Longest time any election may take, plus preemption delays.
    let settle = groups
        .iter()
        .map(|g| {
            let max_cs = g
                .nodes
                .iter()
                .map(|&i| sim.nodes[i].cfg.advert_interval_cs)
                .max();
            let iv = Duration::from_millis(u64::from(max_cs.unwrap_or(100)) * 10);
            let delay = g
                .nodes
                .iter()
                .map(|&i| sim.nodes[i].cfg.preempt_delay)
                .max();
            let skew = if g.version == Version::V2 {
                Duration::from_secs(1)
            } else {
                iv
            };
            (iv * 3 + skew) * 2 + delay.unwrap_or_default()
        })
        .max()
        .unwrap_or_default()
        + Duration::from_millis(20);
    let base = groups.iter().map(|g| g.base_cs).min().unwrap_or(10);
    let unit = Duration::from_millis(u64::from(base) * 10);

    let n = sim.node_count();
    for i in 0..n {
        let at = Instant(Duration::from_micros(rng.range(0, 2_000)));
        sim.schedule(at, Op::Start(i));
    }
    let phases = rng.range(2, 5);
    let mut checks = 0;
    let fail = |sim: &Sim, what: String| (what, sim.trace().to_vec());
    for phase in 0..phases {
        // Chaos: random faults, not checked.
        sim.guard_no_gap = false;
        let chaos_len = unit * rng.range(5, 40) as u32;
        let start = sim.now();
        for _ in 0..rng.range(1, 8) {
            let at = start + Duration::from_nanos(rng.range(0, chaos_len.as_nanos() as u64));
            let op = chaos_op(&mut rng, &sim, unit);
            sim.schedule(at, op);
        }
        sim.run_until(start + chaos_len);
        // Heal: links up, one segment, no loss, stopped nodes mostly restarted.
        let t = sim.now();
        sim.schedule(t, Op::Heal);
        sim.schedule(t, Op::SetNet(Net::CALM));
        for i in 0..n {
            sim.schedule(t, Op::LinkUp(i));
            sim.schedule(t, Op::TrackFault(i, false));
            if !sim.is_running(i) && rng.chance(700) {
                sim.schedule(t, Op::Start(i));
            }
        }
        sim.run_until(t + settle);
        sim.check_settled()
            .map_err(|e| fail(&sim, format!("phase {phase} settled: {e}")))?;
        checks += 1;
        // Quiet: nothing changes, so nothing may move.
        let before = sim.transitions;
        let t = sim.now();
        sim.run_until(t + settle);
        if sim.transitions != before {
            let moved = sim.transitions - before;
            return Err(fail(
                &sim,
                format!("phase {phase}: {moved} transitions while quiet"),
            ));
        }
        // Planned operations with a calm network: graceful restarts and priority changes
        // must never leave a group without a VIP holder.
        sim.guard_no_gap = true;
        let t = sim.now();
        for _ in 0..rng.range(1, 4) {
            let at = t + Duration::from_nanos(rng.range(0, (unit * 10).as_nanos() as u64));
            let i = rng.range(0, n as u64 - 1) as usize;
            // Routers without make-before-break are only stopped in chaos phases.
            if rng.chance(600) && sim.nodes[i].cfg.handoff {
                sim.schedule(at, Op::Stop(i));
                sim.schedule(at + unit * rng.range(1, 20) as u32, Op::Start(i));
            } else {
                sim.schedule(at, Op::Priority(i, rng.range(1, 254) as u8));
            }
        }
        sim.run_until(t + unit * 31 + settle);
        if let Some(v) = sim.violations().first() {
            return Err(fail(&sim, v.clone()));
        }
        sim.check_settled()
            .map_err(|e| fail(&sim, format!("phase {phase} planned: {e}")))?;
        checks += 1;
    }
    Ok(Outcome {
        events: sim.events,
        transitions: sim.transitions,
        checks,
        virtual_time: sim.now().0,
    })
}

fn build_groups(rng: &mut Rng, sim: &mut Sim) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut addr_seed = 10u32;
    for g in 0..rng.range(1, 3) as usize {
        let version = if rng.chance(250) {
            Version::V2
        } else {
            Version::V3
        };
        let ipv6 = version == Version::V3 && rng.chance(400);
        let base_cs = match version {
            Version::V2 => 100 * rng.range(1, 2) as u16,
            Version::V3 => rng.pick(&[2u16, 5, 10, 20, 50, 100]),
        };
        let size = rng.range(2, 5) as usize;
        let owner = if rng.chance(100) {
            Some(rng.range(0, size as u64 - 1) as usize)
        } else {
            None
        };
        let mut nodes = Vec::new();
        for k in 0..size {
            addr_seed += rng.range(1, 3) as u32;
            let primary = if ipv6 {
                IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, addr_seed as u16))
            } else {
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, addr_seed as u8))
            };
            let interval = match version {
                Version::V2 => base_cs,
                Version::V3 => base_cs * rng.range(1, 2) as u16,
            };
            let cfg = Config {
                vrid: 50 + g as u8,
                version,
                priority: if owner == Some(k) {
                    OWNER_PRIORITY
                } else {
                    rng.range(1, 254) as u8
                },
                advert_interval_cs: interval,
                preempt: rng.chance(800),
                preempt_delay: if rng.chance(200) {
                    Duration::from_millis(u64::from(interval) * 10 * rng.range(1, 3))
                } else {
                    Duration::ZERO
                },
                primary,
                handoff: rng.chance(900),
                auth: Auth::None,
            };
            nodes.push(sim.add_node(g, cfg));
        }
        groups.push(Group {
            version,
            base_cs,
            nodes,
        });
    }
    groups
}

fn chaos_op(rng: &mut Rng, sim: &Sim, unit: Duration) -> Op {
    let i = rng.range(0, sim.node_count() as u64 - 1) as usize;
    match rng.range(0, 10) {
        0 => Op::Crash(i),
        1 => Op::Stop(i),
        2 => Op::Start(i),
        3 => Op::LinkDown(i),
        4 => Op::LinkUp(i),
        5 => Op::TrackFault(i, rng.chance(500)),
        6 => Op::Priority(i, rng.range(1, 254) as u8),
        7 => Op::Segment(i, rng.range(0, 2) as u32),
        8 => Op::Heal,
        _ => {
            let max = unit.as_nanos() as u64 / 2;
            let a = Duration::from_nanos(rng.range(0, max));
            let b = Duration::from_nanos(rng.range(0, max));
            Op::SetNet(Net {
                loss_per_mille: rng.range(0, 400) as u32,
                dup_per_mille: rng.range(0, 100) as u32,
                delay_min: a.min(b),
                delay_max: a.max(b),
            })
        }
    }
}

#[cfg(test)]
mod tests;
