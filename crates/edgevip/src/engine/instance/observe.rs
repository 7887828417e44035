//! The consequences of what a router did, in one place: a state change is logged, counted,
//! handed to the notify hook and broadcast to subscribers (Kubernetes Events); the status
//! board shows the instance. Like FRR vrrpd's state-change hooks, the protocol loop only
//! reports; everything else listens.

use std::time::SystemTime;

use edgevip_config::Instance;
use vrrp::router::{Reason, State};

use super::vr::Vr;
use crate::engine::{Shared, Transition, translate};
use crate::metrics::Metrics;
use crate::notify;
use crate::status::{self, InstanceStatus, RouterStatus};

/// One router of `cfg` went `from` → `to`.
pub fn transition(
    sh: &Shared,
    cfg: &Instance,
    vr: &mut Vr,
    from: State,
    to: State,
    reason: Reason,
) {
    vr.transitions += 1;
    vr.since = SystemTime::now();
    tracing::info!(instance = %cfg.name, family = vr.label, vrid = cfg.vrid,
        %from, %to, %reason, master = ?vr.router.master(), "state changed");
    notify::spawn(cfg, vr.label, from.as_str(), to.as_str(), &sh.metrics);
    sh.metrics
        .transitions
        .get_or_create(&Metrics::router(&cfg.name, vr.label))
        .inc();
    sh.metrics.set_state(&cfg.name, vr.label, to.as_str());
    // No receiver (standalone mode without Events) is fine.
    let _ = sh.transitions.send(Transition {
        instance: cfg.name.clone(),
        family: vr.label,
        vrid: cfg.vrid,
        from,
        to,
        reason,
    });
}

/// The instance as `/status` shows it.
pub fn status(cfg: &Instance, vrs: &[Vr]) -> InstanceStatus {
    let routers: Vec<RouterStatus> = vrs
        .iter()
        .map(|f| RouterStatus {
            family: f.label.into(),
            state: f.router.state().as_str().into(),
            effective_priority: f.router.effective_priority(),
            master: f.router.master().map(|a| a.to_string()),
            transitions: f.transitions,
            since: status::rfc3339(f.since),
        })
        .collect();
    let first = routers.first().cloned();
    InstanceStatus {
        name: cfg.name.clone(),
        state: first.as_ref().map_or("init".into(), |r| r.state.clone()),
        priority: cfg.priority,
        effective_priority: first
            .as_ref()
            .map_or(cfg.priority, |r| r.effective_priority),
        master: first.as_ref().and_then(|r| r.master.clone()),
        vips: cfg.vips.iter().map(|v| v.to_string()).collect(),
        transitions: vrs.iter().map(|f| f.transitions).sum(),
        since: first.map_or_else(|| status::rfc3339(SystemTime::now()), |r| r.since),
        interface: cfg.interface.clone(),
        vrid: cfg.vrid,
        version: match translate::version(cfg) {
            vrrp::Version::V2 => 2,
            vrrp::Version::V3 => 3,
        },
        routers,
        error: None,
        ineligible: cfg.ineligible.clone(),
    }
}

/// An instance that could not start: shown, with the reason, until it does.
pub fn failed(cfg: &Instance, error: &str) -> InstanceStatus {
    InstanceStatus {
        state: "failed".into(),
        error: Some(error.into()),
        ..status(cfg, &[])
    }
}
