//! Health checks of a local service (the ingress controller on an edge node). Each check
//! runs in its own task; an instance reads their verdicts through a watch channel and turns
//! failed ones into a priority weight or a fault, like a down tracked interface.

mod probe;
mod tls;
mod verdict;

use std::collections::{BTreeMap, HashMap};

use edgevip_config::HealthCheck;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use probe::{Prober, run_probe};
pub use verdict::Verdict;

use crate::metrics::Metrics;

/// Check name → healthy. A check without a verdict yet is absent and counts as failed: a
/// node must not take the VIP before it has seen its ingress answer.
pub type CheckMap = BTreeMap<String, bool>;

/// The running checks of one instance.
pub struct Checks {
    instance: String,
    metrics: Metrics,
    tx: watch::Sender<CheckMap>,
    running: HashMap<String, (HealthCheck, JoinHandle<()>)>,
}

impl Checks {
    pub fn start(instance: &str, checks: &[HealthCheck], metrics: Metrics) -> Checks {
        let (tx, _) = watch::channel(CheckMap::new());
        let mut c = Checks {
            instance: instance.into(),
            metrics,
            tx,
            running: HashMap::new(),
        };
        c.update(checks);
        c
    }

    pub fn subscribe(&self) -> watch::Receiver<CheckMap> {
        self.tx.subscribe()
    }

    pub fn current(&self) -> CheckMap {
        self.tx.borrow().clone()
    }

    /// Keeps unchanged checks running with their verdicts (a reload must not reset them),
    /// restarts changed ones, stops removed ones.
    pub fn update(&mut self, checks: &[HealthCheck]) {
        let keep: Vec<String> = checks
            .iter()
            .filter(|c| self.running.get(&c.name).is_some_and(|(old, _)| old == *c))
            .map(|c| c.name.clone())
            .collect();
        let stale: Vec<String> = self
            .running
            .keys()
            .filter(|n| !keep.contains(n))
            .cloned()
            .collect();
        for name in stale {
            if let Some((_, task)) = self.running.remove(&name) {
                task.abort();
            }
            self.tx.send_if_modified(|m| m.remove(&name).is_some());
            self.metrics.forget_check(&self.instance, &name);
        }
        for c in checks {
            if keep.contains(&c.name) {
                continue;
            }
            let task = tokio::spawn(run_check(
                self.instance.clone(),
                c.clone(),
                self.tx.clone(),
                self.metrics.clone(),
            ));
            self.running.insert(c.name.clone(), (c.clone(), task));
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for (_, (_, task)) in self.running.drain() {
            task.abort();
        }
    }
}

/// Sum of weights of failed checks, and whether a weightless one failed.
pub fn weight_and_fault(checks: &[HealthCheck], verdicts: &CheckMap) -> (i32, bool) {
    tally(
        checks
            .iter()
            .map(|c| (verdicts.get(&c.name).copied().unwrap_or(false), c.weight)),
    )
}

/// Tracked things as (up, weight): the sum of the weights of those down, and whether one
/// without a weight is down (a fault). Shared by tracked interfaces and health checks.
pub fn tally(items: impl IntoIterator<Item = (bool, Option<i16>)>) -> (i32, bool) {
    let mut weight = 0;
    let mut fault = false;
    for (up, w) in items {
        if !up {
            match w {
                Some(w) => weight += i32::from(w),
                None => fault = true,
            }
        }
    }
    (weight, fault)
}

async fn run_check(
    instance: String,
    check: HealthCheck,
    tx: watch::Sender<CheckMap>,
    metrics: Metrics,
) {
    let mut verdict = Verdict::new(check.rise, check.fall);
    let mut prober = Prober::new(check.probe.clone());
    let mut tick = tokio::time::interval(check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = prober.run(check.timeout).await;
        metrics.check_result(&instance, &check.name, result.is_ok());
        if let Some(healthy) = verdict.observe(result.is_ok()) {
            match &result {
                Ok(()) => tracing::info!(%instance, check = %check.name, "health check passing"),
                Err(e) => {
                    tracing::warn!(%instance, check = %check.name, error = %e, "health check failing")
                }
            }
            metrics.set_check_up(&instance, &check.name, healthy);
            tx.send_modify(|m| {
                m.insert(check.name.clone(), healthy);
            });
        } else if let Err(e) = &result {
            tracing::debug!(%instance, check = %check.name, error = %e, "health check attempt failed");
        }
    }
}

#[cfg(test)]
mod tests;
