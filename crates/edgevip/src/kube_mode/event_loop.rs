//! The daemon's loop in Kubernetes mode: desired states to the data plane, the
//! controller's status to metrics and `/status`, master changes to Events, signals. A
//! function over channels, so a test drives it without netlink or an API server.
//!
//! The controller may end (its watches gone for good): the last desired state stays in
//! force, and signals are still handled, so SIGTERM still hands the VIPs over.

use std::time::Duration;

use edgevip_k8s::controller::KubeStatus;
use edgevip_k8s::desired::Desired;
use tokio::sync::{broadcast, watch};

use crate::engine::Transition;

/// What a signal asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: nothing to reload, the cluster is the configuration.
    Reload,
    /// SIGTERM, SIGINT: hand over and exit.
    Stop,
}

pub trait Signals {
    /// The next signal; cancel-safe (dropped when another input wins).
    async fn next(&mut self) -> Signal;
}

/// What the loop drives: the engine and the forwarder in the daemon, a recorder in tests.
pub trait Plane {
    async fn apply(&mut self, desired: &Desired);
    fn status(&mut self, status: &KubeStatus);
    fn transition(&mut self, t: &Transition);
    /// Once a second: the liveness heartbeat.
    fn tick(&mut self);
    /// Graceful stop: VIPs handed over, forwarding removed.
    async fn shutdown(self);
}

/// The controller's outputs and the engine's transitions.
pub struct Inputs {
    pub desired: watch::Receiver<Option<Desired>>,
    pub status: watch::Receiver<KubeStatus>,
    pub transitions: broadcast::Receiver<Transition>,
}

/// Runs until a stop signal, then shuts the plane down.
pub async fn serve(mut inputs: Inputs, signals: &mut impl Signals, mut plane: impl Plane) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A closed channel is ready at once, forever: its branch is turned off instead.
    let (mut desired_open, mut status_open) = (true, true);
    loop {
        tokio::select! {
            r = inputs.desired.changed(), if desired_open => match r {
                Ok(()) => {
                    let desired = inputs.desired.borrow_and_update().clone();
                    if let Some(d) = desired {
                        plane.apply(&d).await;
                    }
                }
                Err(_) => {
                    tracing::error!("controller stopped; the last desired state stays in force");
                    desired_open = false;
                }
            },
            r = inputs.status.changed(), if status_open => match r {
                Ok(()) => {
                    let st = inputs.status.borrow_and_update().clone();
                    plane.status(&st);
                }
                Err(_) => status_open = false,
            },
            Ok(t) = inputs.transitions.recv() => plane.transition(&t),
            s = signals.next() => match s {
                Signal::Reload => tracing::info!("SIGHUP ignored in Kubernetes mode: the cluster is the configuration"),
                Signal::Stop => break,
            },
            _ = tick.tick() => plane.tick(),
        }
    }
    tracing::info!("shutting down: handing over VIPs");
    plane.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::*;

    impl Signals for mpsc::UnboundedReceiver<Signal> {
        async fn next(&mut self) -> Signal {
            match self.recv().await {
                Some(s) => s,
                None => std::future::pending().await,
            }
        }
    }

    /// Records what the loop asked, shared with the test.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Recorder {
        fn log(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Plane for Recorder {
        async fn apply(&mut self, d: &Desired) {
            self.0
                .lock()
                .unwrap()
                .push(format!("apply {}", d.instances.len()));
        }
        fn status(&mut self, st: &KubeStatus) {
            self.0
                .lock()
                .unwrap()
                .push(format!("status {}", st.rebuilds));
        }
        fn transition(&mut self, t: &Transition) {
            self.0
                .lock()
                .unwrap()
                .push(format!("transition {}", t.instance));
        }
        fn tick(&mut self) {}
        async fn shutdown(self) {
            self.0.lock().unwrap().push("shutdown".into());
        }
    }

    struct Rig {
        desired: watch::Sender<Option<Desired>>,
        status: watch::Sender<KubeStatus>,
        signals: mpsc::UnboundedSender<Signal>,
        plane: Recorder,
        done: tokio::task::JoinHandle<()>,
        _transitions: broadcast::Sender<Transition>,
    }

    fn rig() -> Rig {
        let (desired, drx) = watch::channel(None);
        let (status, srx) = watch::channel(KubeStatus::default());
        let (transitions, trx) = broadcast::channel(4);
        let (signals, mut sig_rx) = mpsc::unbounded_channel();
        let plane = Recorder::default();
        let p = plane.clone();
        let inputs = Inputs {
            desired: drx,
            status: srx,
            transitions: trx,
        };
        let done = tokio::spawn(async move { serve(inputs, &mut sig_rx, p).await });
        Rig {
            desired,
            status,
            signals,
            plane,
            done,
            _transitions: transitions,
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn stop_hands_over_even_after_the_controller_ended() {
        let r = rig();
        r.desired.send_replace(Some(Desired::default()));
        settle().await;
        r.status.send_modify(|s| s.rebuilds = 1);
        settle().await;
        // The controller ends: both of its channels close.
        drop((r.desired, r.status));
        settle().await;
        r.signals.send(Signal::Reload).unwrap();
        settle().await;
        assert!(!r.done.is_finished(), "SIGHUP does not stop");
        r.signals.send(Signal::Stop).unwrap();
        tokio::time::timeout(Duration::from_secs(5), r.done)
            .await
            .expect("SIGTERM handled after the controller ended")
            .unwrap();
        assert_eq!(r.plane.log(), ["apply 0", "status 1", "shutdown"]);
    }

    #[tokio::test]
    async fn stop_while_the_controller_runs_hands_over_once() {
        let r = rig();
        r.desired.send_replace(Some(Desired::default()));
        settle().await;
        r.signals.send(Signal::Stop).unwrap();
        tokio::time::timeout(Duration::from_secs(5), r.done)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.plane.log(), ["apply 0", "shutdown"]);
    }
}
