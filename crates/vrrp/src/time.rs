//! Time as a plain value. The core never reads a clock; callers pass `now`.

use std::time::Duration;

/// A point on a monotonic timeline, as the duration since an arbitrary epoch chosen by the
/// caller (the daemon uses its start, the simulator uses zero). Nanosecond resolution keeps
/// Skew_Time's sub-millisecond differences between priorities intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub Duration);

impl Instant {
    pub const ZERO: Instant = Instant(Duration::ZERO);

    pub fn from_millis(ms: u64) -> Self {
        Instant(Duration::from_millis(ms))
    }

    pub fn saturating_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0 + d)
    }
}

impl std::fmt::Display for Instant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}ms", self.0.as_secs_f64() * 1000.0)
    }
}
