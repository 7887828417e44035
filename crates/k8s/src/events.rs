//! Kubernetes Events: what an operator sees in `kubectl describe` — every master change on
//! this node's Node object, every rejected ConfigMap entry on the ConfigMap, every refused
//! VIPPool on the VIPPool. Publishing
//! never blocks the caller (the API server may be slow or away); failures are logged.

use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Service};
use kube::api::DynamicObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    client: Client,
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
                client.clone(),
                Reporter {
                    controller: "edgevip".into(),
                    instance: Some(node_name.into()),
                },
            ),
            client,
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

    /// On a VIPPool (cluster-scoped); `uid` when known, else looked up.
    pub fn on_pool(&self, name: &str, uid: Option<String>, kind: Kind, reason: &str, note: String) {
        self.on_custom(crate::pools::KIND, name, uid, kind, reason, note);
    }

    /// On a BGPPeer (cluster-scoped).
    pub fn on_peer(&self, name: &str, uid: Option<String>, kind: Kind, reason: &str, note: String) {
        self.on_custom(crate::bgp_peers::KIND, name, uid, kind, reason, note);
    }

    /// On one of edgevip's cluster-scoped custom objects (`edgevip.io/v1alpha1`).
    fn on_custom(
        &self,
        object_kind: &str,
        name: &str,
        uid: Option<String>,
        kind: Kind,
        reason: &str,
        note: String,
    ) {
        let r = ObjectReference {
            api_version: Some(crate::pools::API_VERSION.into()),
            kind: Some(object_kind.into()),
            name: Some(name.into()),
            uid,
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
            action: action(reason, &note),
            note: Some(note),
            secondary: None,
        };
        let (recorder, client) = (self.recorder.clone(), self.client.clone());
        tokio::spawn(async move {
            let mut r = r;
            // `kubectl describe` selects Events by the object's uid.
            if r.uid.is_none() {
                r.uid = uid_of(&client, &r).await;
            }
            if let Err(e) = recorder.publish(&ev, &r).await {
                tracing::debug!(error = %e, reason = %ev.reason, "event not published");
            }
        });
    }
}

/// The recorder counts repeats of one (reason, action, object) as a series and keeps the
/// first note: the action carries a digest of the note, so two different messages (two
/// refused entries) stay two Events and only the same message repeats as a series.
fn action(reason: &str, note: &str) -> String {
    // FNV-1a: stable across runs and versions, unlike std's hasher.
    let digest = note.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{reason}-{digest:08x}")
}

/// The uid of the object an Event is about; `None` (the Event still goes out) when the
/// lookup fails.
async fn uid_of(client: &Client, r: &ObjectReference) -> Option<String> {
    let name = r.name.as_deref()?;
    let ns = r.namespace.as_deref().unwrap_or_default();
    match r.kind.as_deref()? {
        "Node" => uid(Api::<Node>::all(client.clone()), name).await,
        "ConfigMap" => uid(Api::<ConfigMap>::namespaced(client.clone(), ns), name).await,
        "Service" => uid(Api::<Service>::namespaced(client.clone(), ns), name).await,
        crate::pools::KIND => {
            let api = Api::<DynamicObject>::all_with(client.clone(), &crate::pools::api_resource());
            api.get_metadata_opt(name).await.ok()??.metadata.uid
        }
        _ => None,
    }
}

async fn uid<K>(api: Api<K>, name: &str) -> Option<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_metadata_opt(name).await.ok()??.metadata.uid
}

#[cfg(test)]
mod tests {
    #[test]
    fn different_notes_are_different_actions_the_same_note_the_same() {
        let a = super::action("RejectedEntry", "data[\"x\"]: bad");
        assert_eq!(a, super::action("RejectedEntry", "data[\"x\"]: bad"));
        assert_ne!(a, super::action("RejectedEntry", "data[\"y\"]: bad"));
        assert!(a.starts_with("RejectedEntry-") && a.len() <= 128, "{a}");
    }
}
