//! Maps the core's abstract time onto tokio's clock (so tests may pause it) and the wall
//! clock (for RFC 3339 timestamps in `/status`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: tokio::time::Instant,
    wall_start: SystemTime,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start: tokio::time::Instant::now(),
            wall_start: SystemTime::now(),
        }
    }

    pub fn now(&self) -> vrrp::Instant {
        vrrp::Instant(self.start.elapsed())
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn to_tokio(&self, at: vrrp::Instant) -> tokio::time::Instant {
        self.start + at.0
    }

    pub fn wall(&self, at: vrrp::Instant) -> SystemTime {
        self.wall_start + at.0
    }

    pub fn since_start(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Liveness of the event loop: the engine bumps it on every turn of its loop; `/healthz`
/// fails when it stops moving.
#[derive(Clone, Default)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    pub fn beat(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
