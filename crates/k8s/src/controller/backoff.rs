//! Watch retries that really slow down. kube-runtime's `StreamBackoff` resets the delay on
//! every `Ok` item, and a watcher's retry yields `Ok(Event::Init)` before its list fails
//! again (a 404 while the VIPPool CRD is not installed, a 403 while RBAC is missing), so the
//! default backoff retried every 0.8 s forever, from every edge node. Here a reset counts
//! only once the watch has stayed healthy for a while after its last retry.

use std::time::{Duration, Instant};

use kube_runtime::utils::Backoff;
use kube_runtime::watcher::DefaultBackoff;

/// How long a watch must go without an error, after a retry, before delays start over.
const HEALTHY: Duration = Duration::from_secs(5);

pub struct Patient<B = DefaultBackoff> {
    inner: B,
    /// When the last retry was due.
    retry_at: Option<Instant>,
}

impl Default for Patient {
    fn default() -> Self {
        Patient::new(DefaultBackoff::default())
    }
}

impl<B: Backoff> Patient<B> {
    pub fn new(inner: B) -> Self {
        Patient {
            inner,
            retry_at: None,
        }
    }

    fn next_at(&mut self, now: Instant) -> Option<Duration> {
        let d = self.inner.next()?;
        self.retry_at = Some(now + d);
        Some(d)
    }

    fn reset_at(&mut self, now: Instant) {
        if self.retry_at.is_none_or(|t| now >= t + HEALTHY) {
            self.inner.reset();
            self.retry_at = None;
        }
    }
}

impl<B: Backoff> Iterator for Patient<B> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.next_at(Instant::now())
    }
}

impl<B: Backoff> Backoff for Patient<B> {
    fn reset(&mut self) {
        self.reset_at(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 s, 2 s, 3 s, ...
    struct Linear(u64);

    impl Iterator for Linear {
        type Item = Duration;
        fn next(&mut self) -> Option<Duration> {
            self.0 += 1;
            Some(Duration::from_secs(self.0))
        }
    }

    impl Backoff for Linear {
        fn reset(&mut self) {
            self.0 = 0;
        }
    }

    #[test]
    fn an_ok_right_after_a_retry_does_not_start_the_delays_over() {
        let mut b = Patient::new(Linear(0));
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..4 {
            let d = b.next_at(now).unwrap();
            delays.push(d.as_secs());
            // The retry: Init arrives (Ok), then the list fails again.
            now += d + Duration::from_millis(20);
            b.reset_at(now);
        }
        assert_eq!(
            delays,
            [1, 2, 3, 4],
            "grows although each retry began with an Ok"
        );
        // Healthy for longer than HEALTHY after the retry: the next error starts over.
        now += HEALTHY;
        b.reset_at(now);
        assert_eq!(b.next_at(now), Some(Duration::from_secs(1)));
    }
}
