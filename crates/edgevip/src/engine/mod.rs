//! The engine: one task per configured instance, each owning its virtual routers (one per
//! address family) and their timers, and one shared receive path per interface and family
//! that routes datagrams to them by VRID. The engine only starts, updates and stops
//! instances; it holds no protocol state of its own.

mod changes;
mod clock;
mod instance;
mod links;
mod receiver;
mod translate;

use std::collections::HashMap;
use std::time::Duration;

use edgevip_config::Instance;
use edgevip_netio::Netlink;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vrrp::router::{Reason, State};

pub use clock::{Clock, Heartbeat};
pub use links::Links;
pub use receiver::Receivers;

use crate::metrics::Metrics;
use crate::status::Board;

/// What every instance task shares.
#[derive(Clone)]
pub struct Shared {
    pub netlink: Netlink,
    pub metrics: Metrics,
    pub board: Board,
    pub clock: Clock,
    pub links: Links,
    pub heartbeat: Heartbeat,
    pub receivers: Receivers,
    /// Every state change, for Events and anyone else who listens.
    pub transitions: tokio::sync::broadcast::Sender<Transition>,
}

/// One state change of one virtual router, as the core reported it.
#[derive(Debug, Clone)]
pub struct Transition {
    pub instance: String,
    /// "ipv4" or "ipv6": the metric and log label of the router's family.
    pub family: &'static str,
    pub vrid: u8,
    pub from: State,
    pub to: State,
    pub reason: Reason,
}

enum Cmd {
    /// A changed config; the task answers whether it applied it in place (`false`: the
    /// sockets or the core need a restart).
    Update(Box<Instance>, oneshot::Sender<bool>),
    Shutdown,
}

struct Handle {
    cfg: Instance,
    tx: mpsc::Sender<Cmd>,
    task: JoinHandle<()>,
}

/// The running set of instances.
pub struct Engine {
    shared: Shared,
    instances: HashMap<String, Handle>,
}

impl Engine {
    pub fn new(shared: Shared) -> Self {
        Engine {
            shared,
            instances: HashMap::new(),
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Brings the running instances in line with `cfg`, touching only what changed:
    /// unchanged instances keep their state and VIPs, changed ones are updated in place
    /// when possible (else restarted with a handoff), removed ones release their VIPs.
    pub async fn apply(&mut self, instances: &[Instance]) {
        let names: Vec<String> = instances
            .iter()
            .flat_map(|i| {
                std::iter::once(i.interface.clone())
                    .chain(i.track_interfaces.iter().map(|t| t.name.clone()))
            })
            .collect();
        self.shared.links.track(&self.shared.netlink, &names).await;
        let wanted: HashMap<&str, &Instance> =
            instances.iter().map(|i| (i.name.as_str(), i)).collect();
        let gone: Vec<String> = self
            .instances
            .keys()
            .filter(|n| !wanted.contains_key(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            tracing::info!(instance = %name, "instance removed from config: releasing");
            self.stop(&name).await;
        }
        for inst in instances {
            match self.instances.get_mut(&inst.name) {
                Some(h) if h.cfg == *inst => {}
                Some(h) => {
                    let (done, applied) = oneshot::channel();
                    let sent = h.tx.send(Cmd::Update(Box::new(inst.clone()), done)).await;
                    if sent.is_ok() && applied.await == Ok(true) {
                        tracing::info!(instance = %inst.name, "instance changed: updated in place");
                        h.cfg = inst.clone();
                    } else {
                        tracing::info!(instance = %inst.name, "instance identity changed: restarting it");
                        self.stop(&inst.name).await;
                        self.start(inst);
                    }
                }
                None => self.start(inst),
            }
        }
    }

    fn start(&mut self, inst: &Instance) {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(instance::run(inst.clone(), self.shared.clone(), rx));
        self.instances.insert(
            inst.name.clone(),
            Handle {
                cfg: inst.clone(),
                tx,
                task,
            },
        );
    }

    /// Graceful stop of one instance: waits for its handoff to finish (bounded).
    async fn stop(&mut self, name: &str) {
        if let Some(h) = self.instances.remove(name) {
            let bound = translate::stop_bound(&h.cfg);
            let _ = h.tx.send(Cmd::Shutdown).await;
            wait_task(name, h.task, bound).await;
            self.shared.board.remove(name);
            self.shared.metrics.forget(name);
        }
    }

    /// Graceful shutdown of everything, in parallel.
    pub async fn shutdown(mut self) {
        let handles: Vec<(String, Handle)> = self.instances.drain().collect();
        let mut waits = Vec::new();
        for (name, h) in handles {
            let bound = translate::stop_bound(&h.cfg);
            let _ = h.tx.send(Cmd::Shutdown).await;
            waits.push(tokio::spawn(async move {
                wait_task(&name, h.task, bound).await
            }));
        }
        for w in waits {
            let _ = w.await;
        }
    }
}

async fn wait_task(name: &str, mut task: JoinHandle<()>, bound: Duration) {
    if tokio::time::timeout(bound, &mut task).await.is_err() {
        tracing::warn!(instance = %name, "instance did not stop in {bound:?}; aborting it");
        task.abort();
    }
}
