//! Who allocates: the holder of a `coordination.k8s.io/v1` Lease among the running edgevip
//! pods. Only the holder writes Service status; serving never waits for it (VIPs move by
//! VRRP whether or not anyone holds the Lease).
//!
//! The rule is client-go's, and like it never compares clocks across nodes: a challenger
//! takes the Lease only after the record has stayed unchanged for a whole lease duration *by
//! its own clock*, while a holder stops writing once it failed to renew for two thirds of
//! that duration. So two pods never write at once, whatever their clocks say, and a dead
//! holder is replaced within one lease duration plus one retry period.
//!
//! `Elector` is pure (time is an input); `run` carries its steps out against the API.

mod run;

use std::time::Duration;

use tokio::time::Instant;

pub use run::{LeaseOptions, start};

/// The parts of a Lease the election reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `spec.holderIdentity`; empty when released.
    pub holder: String,
    pub duration: Duration,
    /// `spec.renewTime` as written (compared, never trusted as a clock).
    pub renewed: String,
    pub transitions: i32,
}

/// What to write after reading the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it holding it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Released or expired: take it over (`transitions` + 1).
    Acquire,
    /// Someone else holds it, alive as far as we can tell.
    Wait { holder: String },
}

pub struct Elector {
    me: String,
    duration: Duration,
    /// The record last read and when it was first seen so.
    seen: Option<(Record, Instant)>,
    /// When a write making us the holder last succeeded.
    renewed_at: Option<Instant>,
}

impl Elector {
    pub fn new(me: impl Into<String>, duration: Duration) -> Elector {
        Elector {
            me: me.into(),
            duration,
            seen: None,
            renewed_at: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.me
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How often to read and renew: client-go's 2 s of 15 s.
    pub fn retry_period(&self) -> Duration {
        self.duration * 2 / 15
    }

    /// A holder that could not renew for this long stops acting as one, well before a
    /// challenger may take over (client-go's renew deadline, 10 s of 15 s).
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Decides what to write, given the Lease as read now (`None`: it does not exist).
    pub fn observe(&mut self, current: Option<&Record>, now: Instant) -> Step {
        let Some(r) = current else {
            self.seen = None;
            return Step::Create;
        };
        if self.seen.as_ref().is_none_or(|(s, _)| s != r) {
            self.seen = Some((r.clone(), now));
        }
        let since = self.seen.as_ref().map_or(now, |(_, t)| *t);
        if r.holder == self.me {
            Step::Renew
        } else if r.holder.is_empty() || now.duration_since(since) >= r.duration {
            Step::Acquire
        } else {
            // Someone else holds it: whatever we held is gone.
            self.renewed_at = None;
            Step::Wait {
                holder: r.holder.clone(),
            }
        }
    }

    /// A write that made (or kept) us the holder succeeded at `now`.
    pub fn written(&mut self, now: Instant) {
        self.renewed_at = Some(now);
    }

    /// We hold the Lease and may write Service status.
    pub fn leading(&self, now: Instant) -> bool {
        self.renewed_at
            .is_some_and(|t| now.duration_since(t) < self.renew_deadline())
    }
}

#[cfg(test)]
mod tests;
