//! What a chaos run reports: rounds, violations, the worst gap, the time without answers,
//! and per scenario the median and spread (p10–p90, min–max) of the rounds' longest gaps;
//! the edgevip / keepalived ratio of the medians where both ran a scenario.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::Peer;

#[derive(Debug, Clone)]
pub struct RoundResult {
    /// When the round began, from the start of the run.
    pub at: Duration,
    /// The scenario: the faults' labels.
    pub label: String,
    /// The prober's longest time without an answer during the round.
    pub gap: Duration,
    /// The sum of its silences of at least `OUTAGE_MIN` (10 ms).
    pub unreachable: Duration,
    pub violations: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PeerReport {
    pub peer: Peer,
    pub rounds: Vec<RoundResult>,
    pub elapsed: Duration,
}

/// Nearest-rank percentile of sorted `v` (`p` in 0..=100).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Median, p10, p90, min, max of `v` (any order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(v: &[f64]) -> Spread {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        Spread {
            n: s.len(),
            median: percentile(&s, 50.0),
            p10: percentile(&s, 10.0),
            p90: percentile(&s, 90.0),
            min: s.first().copied().unwrap_or(f64::NAN),
            max: s.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// `median (p10–p90; min–max)`, in ms.
    pub fn cell(&self) -> String {
        format!(
            "{:.0} ({:.0}–{:.0}; {:.0}–{:.0})",
            self.median, self.p10, self.p90, self.min, self.max
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PeerReport {
    pub fn violations(&self) -> usize {
        self.rounds.iter().map(|r| r.violations.len()).sum()
    }

    pub fn worst(&self) -> Option<&RoundResult> {
        self.rounds.iter().max_by_key(|r| r.gap)
    }

    pub fn worst_gap(&self) -> Duration {
        self.worst().map_or(Duration::ZERO, |r| r.gap)
    }

    pub fn unreachable(&self) -> Duration {
        self.rounds.iter().map(|r| r.unreachable).sum()
    }

    /// Per scenario, the rounds' longest gaps in ms.
    pub fn gaps_by_scenario(&self) -> BTreeMap<String, Vec<f64>> {
        let mut m: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in &self.rounds {
            m.entry(r.label.clone()).or_default().push(ms(r.gap));
        }
        m
    }

    /// The summary and the per-scenario table, as Markdown.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let gaps: Vec<f64> = self.rounds.iter().map(|r| ms(r.gap)).collect();
        let unr: Vec<f64> = self.rounds.iter().map(|r| ms(r.unreachable)).collect();
        let _ = writeln!(s, "### {}\n", self.peer.name());
        let _ = writeln!(
            s,
            "- {} rounds in {:.0} s, {} violations",
            self.rounds.len(),
            self.elapsed.as_secs_f64(),
            self.violations()
        );
        if let Some(w) = self.worst() {
            let _ = writeln!(
                s,
                "- worst gap {:.0} ms (round at {:.0} s: {})",
                ms(w.gap),
                w.at.as_secs_f64(),
                w.label
            );
        }
        let _ = writeln!(
            s,
            "- unreachable {:.0} ms in total ({:.3} % of the run); per round, ms: {}",
            ms(self.unreachable()),
            100.0 * self.unreachable().as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9),
            Spread::of(&unr).cell()
        );
        let _ = writeln!(
            s,
            "- longest gap per round, ms: {}\n",
            Spread::of(&gaps).cell()
        );
        for r in self.rounds.iter().filter(|r| !r.violations.is_empty()) {
            let _ = writeln!(
                s,
                "- VIOLATION at {:.0} s ({}): {}",
                r.at.as_secs_f64(),
                r.label,
                r.violations.join("; ")
            );
        }
        let _ = writeln!(
            s,
            "| scenario | rounds | longest gap, ms: median (p10–p90; min–max) |"
        );
        let _ = writeln!(s, "|---|---|---|");
        for (label, v) in self.gaps_by_scenario() {
            let sp = Spread::of(&v);
            let _ = writeln!(s, "| {label} | {} | {} |", sp.n, sp.cell());
        }
        s
    }
}

/// The scenarios both ran, side by side, with the ratio of the medians (— where the
/// keepalived median is under 10 ms: no outage to compare with).
pub fn render_comparison(ev: &PeerReport, ka: &PeerReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| scenario | rounds (edgevip / keepalived) | edgevip, ms | keepalived, ms | edgevip / keepalived (medians) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let (e, k) = (ev.gaps_by_scenario(), ka.gaps_by_scenario());
    for (label, ve) in &e {
        let Some(vk) = k.get(label) else { continue };
        let (se, sk) = (Spread::of(ve), Spread::of(vk));
        let ratio = if sk.median >= 10.0 {
            format!("{:.2}", se.median / sk.median)
        } else {
            "— (keepalived median < 10 ms)".into()
        };
        let _ = writeln!(
            s,
            "| {label} | {} / {} | {} | {} | {ratio} |",
            se.n,
            sk.n,
            se.cell(),
            sk.cell()
        );
    }
    let total = |r: &PeerReport| ms(r.unreachable()) / r.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        s,
        "| **whole run** | {} / {} | violations {}, worst {:.0}, unreachable {:.1} ms/s | violations {}, worst {:.0}, unreachable {:.1} ms/s | worst {:.2}, unreachable {:.2} |",
        ev.rounds.len(),
        ka.rounds.len(),
        ev.violations(),
        ms(ev.worst_gap()),
        total(ev),
        ka.violations(),
        ms(ka.worst_gap()),
        total(ka),
        ms(ev.worst_gap()) / ms(ka.worst_gap()).max(1e-9),
        total(ev) / total(ka).max(1e-9)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Spread::of(&v);
        assert_eq!(
            (s.median, s.p10, s.p90, s.min, s.max),
            (5.0, 1.0, 9.0, 1.0, 10.0)
        );
        let one = Spread::of(&[7.0]);
        assert_eq!((one.median, one.p10, one.p90), (7.0, 7.0, 7.0));
    }
}
