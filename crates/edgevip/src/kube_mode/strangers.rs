//! Adverts that keep being dropped as `not_a_peer`: a node sends VRRP from an address that
//! is none of the edge nodes' InternalIPs (e.g. `--interface` names another NIC than the
//! InternalIP's), so nobody hears it and more than one node becomes master. Debug logs and
//! a counter are not enough for that: a run that lasts is told once as a Warning Event on
//! this node. Pure: the daemon feeds it the counters every second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Drops that keep coming for this long (gaps of at most `GAP`) are persistent.
pub const PERSISTENT: Duration = Duration::from_secs(10);
/// A longer pause ends a run.
const GAP: Duration = Duration::from_secs(3);
/// After this long without drops, a new run is told again.
const QUIET: Duration = Duration::from_secs(60);

/// `(instance, family)`, family as the metrics label it (`ipv4`, `ipv6`).
pub type Key = (String, &'static str);

#[derive(Debug, Default)]
pub struct Strangers {
    runs: BTreeMap<Key, Run>,
}

#[derive(Debug)]
struct Run {
    last: u64,
    /// Start of the current run of growth, and the drops in it.
    since: Option<(Instant, u64)>,
    last_growth: Option<Instant>,
    told: bool,
}

impl Strangers {
    /// The `not_a_peer` counters now; returns the notes to tell (each run once).
    pub fn observe(&mut self, counts: &[(Key, u64)], now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        self.runs
            .retain(|k, _| counts.iter().any(|(key, _)| key == k));
        for (key, count) in counts {
            let Some(r) = self.runs.get_mut(key) else {
                // The first sight is the baseline (drops before this daemon looked).
                self.runs.insert(
                    key.clone(),
                    Run {
                        last: *count,
                        since: None,
                        last_growth: None,
                        told: false,
                    },
                );
                continue;
            };
            let quiet_for = r.last_growth.map(|t| now.duration_since(t));
            if *count > r.last {
                let grown = count - r.last;
                r.since = match r.since {
                    Some((t, n)) if quiet_for.is_some_and(|q| q <= GAP) => Some((t, n + grown)),
                    _ => Some((now, grown)),
                };
                r.last_growth = Some(now);
                r.last = *count;
                if let Some((t, n)) = r.since
                    && !r.told
                    && now.duration_since(t) >= PERSISTENT
                {
                    r.told = true;
                    out.push(format!(
                        "instance {} ({}): {n} adverts dropped as not_a_peer over {}s: an edge node sends VRRP from an address that is none of the edge nodes' InternalIPs (does --interface name another NIC than the InternalIP's?); more than one node may be master",
                        key.0,
                        key.1,
                        now.duration_since(t).as_secs()
                    ));
                }
            } else {
                r.last = *count;
                if quiet_for.is_some_and(|q| q > GAP) {
                    r.since = None;
                }
                if quiet_for.is_some_and(|q| q > QUIET) {
                    r.told = false;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        ("vips".into(), "ipv4")
    }

    /// Feeds `steps` seconds where the counter grows by `per_s` each; returns the notes.
    fn run(s: &mut Strangers, t0: Instant, from: u64, secs: u64, per_s: u64) -> Vec<String> {
        let mut out = Vec::new();
        for k in 0..=secs {
            let now = t0 + Duration::from_secs(k);
            out.extend(s.observe(&[(key(), from + k * per_s)], now));
        }
        out
    }

    #[test]
    fn a_lasting_run_is_told_once_a_blip_never() {
        let mut s = Strangers::default();
        let t0 = Instant::now();
        // Drops before the daemon looked are the baseline.
        assert!(s.observe(&[(key(), 500)], t0).is_empty());
        // A blip: a few seconds of drops, then quiet, then a few more: not persistent.
        assert!(run(&mut s, t0 + Duration::from_secs(1), 500, 5, 3).is_empty());
        assert!(
            s.observe(&[(key(), 515)], t0 + Duration::from_secs(12))
                .is_empty()
        );
        assert!(run(&mut s, t0 + Duration::from_secs(13), 515, 5, 3).is_empty());
        // Ten seconds of drops: told once, however long it lasts.
        let t1 = t0 + Duration::from_secs(30);
        let told = run(&mut s, t1, 600, 30, 10);
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(
            told[0].starts_with("instance vips (ipv4): 170 adverts dropped as not_a_peer over 10s"),
            "{}",
            told[0]
        );
        // Quiet for over a minute, then again: told again.
        let t2 = t1 + Duration::from_secs(100);
        assert!(s.observe(&[(key(), 900)], t2).is_empty());
        assert!(
            s.observe(&[(key(), 900)], t2 + Duration::from_secs(70))
                .is_empty()
        );
        assert_eq!(
            run(&mut s, t2 + Duration::from_secs(71), 900, 12, 1).len(),
            1
        );
    }
}
