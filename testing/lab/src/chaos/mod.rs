//! The chaos driver (issue 10): rounds of random faults on three nodes — SIGKILL and
//! restart, SIGSTOP/SIGCONT of the master, link flaps, planned restarts, reloads with a
//! changed priority, API-server outages, sometimes two at once — and after each, the
//! check that exactly one node holds the VIP and that it is the right one. A prober in the
//! client namespace measures what a user would see: each round's longest gap and the time
//! without answers.
//!
//! One round:
//!
//! ```text
//!  prober on ─ apply faults ─ settle (≤ MID_BOUND): the eligible holder is right ─ hold
//!    ─ undo faults ─ settle (≤ after bound): the only holder is right ─ prober off
//! ```
//!
//! `scenario` draws the rounds from a seeded RNG, `actions` runs them on a rig,
//! `invariant` says which node must hold the VIP, `stats` summarises.

pub mod actions;
pub mod invariant;
pub mod scenario;
pub mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use actions::{NODES, Peer, Rig};
use invariant::Scope;
use scenario::{Kind, Menu, Rng};
pub use stats::{PeerReport, RoundResult};

/// While the faults last: a failover waits out Master_Down_Interval (≈ 350 ms at 100 ms
/// adverts); the rest is room for a machine shared with compilers.
const MID_BOUND: Duration = Duration::from_secs(3);
/// After the faults are undone: a restarted daemon starts as backup and waits
/// Master_Down_Interval before it preempts.
const AFTER_BOUND: Duration = Duration::from_secs(8);
/// In Kubernetes mode a restarted daemon first lists the API (after an outage, its client
/// may be in a back-off).
const AFTER_BOUND_KUBE: Duration = Duration::from_secs(20);
/// A holder must stay right this long to count (not a transient of an election).
const STABLE: Duration = Duration::from_millis(300);

pub struct Options {
    /// The edgevip executable.
    pub bin: PathBuf,
    /// Rounds start until this much time has passed (the last one finishes).
    pub duration: Duration,
    pub seed: u64,
    /// Print each round as it ends.
    pub verbose: bool,
}

/// Runs rounds on a fresh rig of `peer` for `opts.duration`. `None` (after a SKIP message)
/// when the lab cannot run here.
pub fn run(test: &str, peer: Peer, opts: &Options) -> Option<PeerReport> {
    let mut rig = Rig::new(test, peer, &opts.bin)?;
    let mut rng = Rng::new(opts.seed);
    let mut report = PeerReport {
        peer,
        rounds: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let after_bound = if peer == Peer::EdgevipKube {
        AFTER_BOUND_KUBE
    } else {
        AFTER_BOUND
    };
    let start = Instant::now();
    // Bounded: even if rounds were instant, no more than one per 100 ms.
    let max_rounds = opts.duration.as_millis() / 100 + 1;
    while start.elapsed() < opts.duration && (report.rounds.len() as u128) < max_rounds {
        let master = rig
            .model
            .expected()
            .expect("every node is back after a round");
        let prios: Vec<u8> = rig.model.nodes.iter().map(|n| n.priority).collect();
        let round = scenario::choose(
            &mut rng,
            &Menu {
                kinds: peer.kinds(),
                double_percent: peer.double_percent(),
                nodes: NODES,
                master,
                priorities: &prios,
            },
        );
        let at = start.elapsed();
        rig.cluster_mut().start_probe(crate::VIP4);
        // Let the prober see the VIP answer before the fault.
        std::thread::sleep(Duration::from_millis(100));
        let mut violations = Vec::new();
        let t = Instant::now();
        for f in &round.faults {
            rig.apply(f);
        }
        if let Some(v) = settle(&rig, Scope::Eligible, MID_BOUND) {
            violations.push(format!("during the faults: {v}"));
        }
        let hold = Duration::from_millis(round.hold_ms);
        std::thread::sleep(hold.saturating_sub(t.elapsed()));
        // The API first: a daemon started while it is down could not learn its VIPs.
        let mut undo = round.faults.clone();
        undo.sort_by_key(|f| f.kind != Kind::ApiOutage);
        for f in &undo {
            rig.undo(f);
        }
        if let Some(v) = settle(&rig, Scope::All, after_bound) {
            violations.push(format!("after recovery: {v}"));
        }
        let probe = rig.cluster_mut().stop_probe();
        let result = RoundResult {
            at,
            label: round.label(),
            gap: probe.longest_gap,
            unreachable: probe.outages.iter().map(|o| o.1).sum(),
            violations,
        };
        if opts.verbose || !result.violations.is_empty() {
            eprintln!(
                "[{}] round {} at {:.1} s: {}: gap {} ms, unreachable {} ms{}",
                peer.name(),
                report.rounds.len() + 1,
                at.as_secs_f64(),
                result.label,
                result.gap.as_millis(),
                result.unreachable.as_millis(),
                if result.violations.is_empty() {
                    String::new()
                } else {
                    format!(" — VIOLATION: {}", result.violations.join("; "))
                }
            );
        }
        let failed = !result.violations.is_empty();
        report.rounds.push(result);
        if failed {
            eprintln!("{}", rig.logs());
            rig.reset();
            if let Some(v) = settle(&rig, Scope::All, after_bound) {
                // Counted, and the run ends: every later round would inherit it.
                eprintln!("[{}] still wrong after a reset: {v}", peer.name());
                if let Some(last) = report.rounds.last_mut() {
                    last.violations
                        .push(format!("still wrong after a reset: {v}"));
                }
                break;
            }
        }
        rig.model.holder = rig.model.expected();
    }
    report.elapsed = start.elapsed();
    Some(report)
}

/// Waits (bounded) until the holders are right and stay so for [`STABLE`]; what was
/// wrong when the bound passed, or `None`.
fn settle(rig: &Rig, scope: Scope, bound: Duration) -> Option<String> {
    let start = Instant::now();
    let mut right_since: Option<Instant> = None;
    loop {
        let holders = rig.holders();
        match invariant::check(&rig.model, &holders, scope) {
            None => {
                let since = *right_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STABLE {
                    return None;
                }
            }
            Some(wrong) => {
                right_since = None;
                if start.elapsed() >= bound {
                    return Some(format!("{wrong} after {} ms", bound.as_millis()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
