//! Which backends a new connection tries, in order. A backend whose connect failed is
//! ejected for a backoff that doubles with each further failure (1 s up to 60 s) and
//! rejoins when it passes (one connection tries it; success clears it, failure doubles
//! the backoff). So a dead backend costs one failed connect per backoff period, not one
//! per client connection. Pure: the caller passes the time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const BASE: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(60);
/// Backends one connection tries at most.
pub const MAX_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Ejection {
    failures: u32,
    until: Instant,
}

#[derive(Debug, Default)]
pub struct Health {
    ejected: HashMap<SocketAddr, Ejection>,
}

impl Health {
    /// Up to `MAX_ATTEMPTS` backends, round robin from `start`, skipping ejected ones. When
    /// every backend is ejected, the one whose ejection ends first (the client gets one
    /// try rather than a refusal).
    pub fn candidates(&self, list: &[SocketAddr], start: usize, now: Instant) -> Vec<SocketAddr> {
        let n = list.len();
        let mut out: Vec<SocketAddr> = (0..n)
            .map(|k| list[(start + k) % n])
            .filter(|b| self.ejected.get(b).is_none_or(|e| e.until <= now))
            .take(MAX_ATTEMPTS)
            .collect();
        if out.is_empty()
            && let Some(b) = list
                .iter()
                .min_by_key(|b| self.ejected.get(b).map(|e| e.until))
        {
            out.push(*b);
        }
        out
    }

    /// A failed connect: ejected for 1 s, 2 s, 4 s, … up to 60 s. Returns the backoff.
    pub fn failed(&mut self, b: SocketAddr, now: Instant) -> Duration {
        let failures = self.ejected.get(&b).map_or(0, |e| e.failures) + 1;
        let backoff = BASE.saturating_mul(1u32 << (failures - 1).min(16)).min(MAX);
        self.ejected.insert(
            b,
            Ejection {
                failures,
                until: now + backoff,
            },
        );
        backoff
    }

    pub fn succeeded(&mut self, b: SocketAddr) {
        self.ejected.remove(&b);
    }

    /// Forgets backends no longer listed.
    pub fn retain(&mut self, list: &[SocketAddr]) {
        self.ejected.retain(|b, _| list.contains(b));
    }

    pub fn is_ejected(&self, b: SocketAddr, now: Instant) -> bool {
        self.ejected.get(&b).is_some_and(|e| e.until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([192, 0, 2, 10], 8000 + i)))
            .collect()
    }

    #[test]
    fn a_failed_backend_is_skipped_until_its_backoff_passes_and_backoff_doubles() {
        let l = addrs(3);
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(h.candidates(&l, 0, t0), l);
        assert_eq!(h.failed(l[0], t0), Duration::from_secs(1));
        // Every connection in the next second skips it.
        for start in 0..6 {
            assert!(
                !h.candidates(&l, start, t0).contains(&l[0]),
                "start {start}"
            );
        }
        let t1 = t0 + Duration::from_millis(1001);
        assert!(h.candidates(&l, 0, t1).contains(&l[0]), "rejoins after 1 s");
        assert_eq!(h.failed(l[0], t1), Duration::from_secs(2));
        assert!(
            !h.candidates(&l, 0, t1 + Duration::from_millis(1500))
                .contains(&l[0])
        );
        for _ in 0..20 {
            h.failed(l[0], t1);
        }
        assert_eq!(h.failed(l[0], t1), MAX, "capped");
        h.succeeded(l[0]);
        assert_eq!(h.candidates(&l, 0, t1), l);
    }

    #[test]
    fn all_ejected_gives_one_try_on_the_soonest_and_attempts_are_bounded() {
        let l = addrs(5);
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(h.candidates(&l, 0, t0).len(), MAX_ATTEMPTS);
        h.failed(l[1], t0);
        for b in [l[0], l[2], l[3], l[4]] {
            h.failed(b, t0);
            h.failed(b, t0);
        }
        assert_eq!(h.candidates(&l, 0, t0), vec![l[1]]);
        h.retain(&l[2..]);
        assert!(!h.is_ejected(l[1], t0));
    }
}
