//! Kubernetes Events: what an operator sees in `kubectl describe` — every master change on
//! this node's Node object, every rejected ConfigMap entry on the ConfigMap. Publishing
//! never blocks the caller (the API server may be slow or away); failures are logged.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

/// Warning or Normal, as `kubectl describe` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

impl Events {
    pub fn new(client: Client, node_name: &str) -> Events {
        Events {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: "edgevip".into(),
                    instance: Some(node_name.into()),
                },
            ),
        }
    }

    pub fn on_configmap(&self, ns: &str, name: &str, kind: Kind, reason: &str, note: String) {
        let r = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        };
        self.publish(r, kind, reason, note);
    }

    pub fn on_service(&self, ns: &str, name: &str, kind: Kind, reason: &str, note: String) {
        let r = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        };
        self.publish(r, kind, reason, note);
    }

    pub fn on_node(&self, node: &str, kind: Kind, reason: &str, note: String) {
        let r = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        };
        self.publish(r, kind, reason, note);
    }

    fn publish(&self, r: ObjectReference, kind: Kind, reason: &str, mut note: String) {
        // The API limits notes to 1 kB.
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let ev = Event {
            type_: match kind {
                Kind::Normal => EventType::Normal,
                Kind::Warning => EventType::Warning,
            },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &r).await {
                tracing::debug!(error = %e, reason = %ev.reason, "event not published");
            }
        });
    }
}
