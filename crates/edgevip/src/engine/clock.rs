//! Maps the core's abstract time onto tokio's clock (so tests may pause it) and the wall
//! clock (for RFC 3339 timestamps in `/status`).

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
