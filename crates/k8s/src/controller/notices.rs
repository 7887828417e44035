//! Events for the operator: each rejection, warning, Service without a VIP and refused or
//! overlapping VIPPool told once (the told set is remembered, so a re-list or an unrelated
//! change does not repeat them).

use std::collections::{BTreeMap, BTreeSet};

use crate::Reject;
use crate::desired::Desired;
use crate::events::Kind;

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regarding {
    /// This node's Node object.
    Node,
    ConfigMap,
    /// `ns/name`.
    Service(String),
    /// A VIPPool, by name.
    Pool(String),
    /// A BGPPeer, by name.
    Peer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub regarding: Regarding,
    pub kind: Kind,
    pub reason: &'static str,
    pub note: String,
}

/// What has been told already.
#[derive(Debug, Default)]
pub struct Told {
    rejects: BTreeSet<Reject>,
    warnings: BTreeSet<Reject>,
    lb_problems: BTreeMap<String, String>,
    lb_notes: BTreeMap<String, String>,
    pool_rejects: BTreeSet<Reject>,
    pool_warnings: BTreeSet<Reject>,
    peer_rejects: BTreeSet<Reject>,
    peer_unusable: BTreeSet<Reject>,
}

impl Told {
    /// Forgets what was told about the ConfigMap, Services and VIPPools (not about this
    /// node), so the next `news` and `pool_news` tell it again.
    pub fn forget_cluster(&mut self) {
        self.rejects.retain(|r| r.field == "node");
        self.warnings.clear();
        self.lb_problems.clear();
        self.lb_notes.clear();
        self.pool_rejects.clear();
        self.pool_warnings.clear();
        self.peer_rejects.clear();
    }

    /// What is new of the BGPPeers: refused ones (told by the pod that speaks for the
    /// cluster) and those this node cannot use (told by this node: `true`), each an
    /// `InvalidBGPPeer` Warning on the BGPPeer.
    pub fn peer_news(&mut self, refused: &[Reject], unusable: &[Reject]) -> Vec<(Notice, bool)> {
        let peer = |list, told| warn_new(list, told, "BGPPeer ", "InvalidBGPPeer", Regarding::Peer);
        let cluster = peer(refused, &mut self.peer_rejects)
            .into_iter()
            .map(|n| (n, false));
        let node = peer(unusable, &mut self.peer_unusable)
            .into_iter()
            .map(|n| (n, true));
        cluster.chain(node).collect()
    }

    /// What is new of the pools: refused ones (`InvalidPool`, one Event per problem) and
    /// overlapping ones (`OverlappingPools`), each on its VIPPool. The flag's pool has no
    /// object to tell it on (and is never the later one of an overlapping pair).
    pub fn pool_news(&mut self, refused: &[Reject], overlapping: &[Reject]) -> Vec<Notice> {
        let mut out = warn_new(
            refused,
            &mut self.pool_rejects,
            "VIPPool ",
            "InvalidPool",
            Regarding::Pool,
        );
        out.extend(warn_new(
            overlapping,
            &mut self.pool_warnings,
            "VIPPool ",
            "OverlappingPools",
            Regarding::Pool,
        ));
        out
    }

    /// What `d` says that was not told before (each logged here once, too).
    pub fn news(&mut self, d: &Desired) -> Vec<Notice> {
        let mut out = Vec::new();
        let now: BTreeSet<Reject> = d.rejects.iter().cloned().collect();
        for r in now.difference(&self.rejects) {
            tracing::warn!(object = %r.object, field = %r.field, "rejected: {}", r.message);
            out.push(if r.field == "node" {
                Notice {
                    regarding: Regarding::Node,
                    kind: Kind::Warning,
                    reason: "NotServing",
                    note: r.message.clone(),
                }
            } else {
                Notice {
                    regarding: Regarding::ConfigMap,
                    kind: Kind::Warning,
                    reason: "RejectedEntry",
                    note: format!("{}: {}", r.field, r.message),
                }
            });
        }
        self.rejects = now;
        let now: BTreeSet<Reject> = d.warnings.iter().cloned().collect();
        for r in now.difference(&self.warnings) {
            tracing::warn!(object = %r.object, field = %r.field, "{}", r.message);
            out.push(Notice {
                regarding: Regarding::ConfigMap,
                kind: Kind::Warning,
                reason: "UnsupportedMethod",
                note: format!("{}: {}", r.field, r.message),
            });
        }
        self.warnings = now;
        for (key, why) in &d.lb.problems {
            if self.lb_problems.get(key) != Some(why) {
                tracing::warn!(service = %key, "no VIP: {why}");
                out.push(Notice {
                    regarding: Regarding::Service(key.clone()),
                    kind: Kind::Warning,
                    reason: "NoVIP",
                    note: why.clone(),
                });
            }
        }
        self.lb_problems = d.lb.problems.clone();
        for (key, why) in &d.lb.notes {
            if self.lb_notes.get(key) != Some(why) {
                tracing::warn!(service = %key, "{why}");
                out.push(Notice {
                    regarding: Regarding::Service(key.clone()),
                    kind: Kind::Warning,
                    reason: "VIPWarning",
                    note: why.clone(),
                });
            }
        }
        self.lb_notes = d.lb.notes.clone();
        out
    }
}

/// The problems in `list` not in `told` (which becomes `list`): each logged, and a Warning
/// `reason` on its object when the object is `<prefix><name>`.
fn warn_new(
    list: &[Reject],
    told: &mut BTreeSet<Reject>,
    prefix: &str,
    reason: &'static str,
    regarding: fn(String) -> Regarding,
) -> Vec<Notice> {
    let now: BTreeSet<Reject> = list.iter().cloned().collect();
    let mut out = Vec::new();
    for r in now.difference(told) {
        tracing::warn!(object = %r.object, field = %r.field, "{reason}: {}", r.message);
        if let Some(name) = r.object.strip_prefix(prefix) {
            out.push(Notice {
                regarding: regarding(name.to_string()),
                kind: Kind::Warning,
                reason,
                note: format!("{}: {}", r.field, r.message),
            });
        }
    }
    *told = now;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(field: &str) -> Reject {
        Reject {
            object: "ConfigMap edgevip/vips".into(),
            field: field.into(),
            message: "bad".into(),
        }
    }

    #[test]
    fn each_problem_is_told_once() {
        let mut told = Told::default();
        let mut d = Desired {
            rejects: vec![reject("data[\"x\"]"), reject("node")],
            ..Default::default()
        };
        d.lb.problems
            .insert("web/a".into(), "pool exhausted".into());
        let n = told.news(&d);
        let reasons: Vec<(&Regarding, &str)> = n.iter().map(|n| (&n.regarding, n.reason)).collect();
        assert_eq!(
            reasons,
            [
                (&Regarding::ConfigMap, "RejectedEntry"),
                (&Regarding::Node, "NotServing"),
                (&Regarding::Service("web/a".into()), "NoVIP")
            ]
        );
        assert_eq!(n[0].note, "data[\"x\"]: bad");
        assert!(told.news(&d).is_empty(), "told once");
        // Gone and back: told again.
        d.rejects.pop();
        assert!(told.news(&d).is_empty());
        d.rejects.push(reject("node"));
        assert_eq!(told.news(&d).len(), 1);
        // A new speaker tells the cluster-level ones again, not this node's.
        told.forget_cluster();
        let again: Vec<&str> = told.news(&d).iter().map(|n| n.reason).collect();
        assert_eq!(again, ["RejectedEntry", "NoVIP"]);
    }

    #[test]
    fn pool_problems_are_told_once_on_their_pool() {
        let mut told = Told::default();
        let bad = Reject {
            object: "VIPPool blue".into(),
            field: "spec.addresses[1]".into(),
            message: "\"x\" is not an address".into(),
        };
        let overlap = Reject {
            object: "VIPPool red".into(),
            field: "spec.addresses".into(),
            message: "overlaps VIPPool green".into(),
        };
        let (bad, overlap) = (vec![bad], vec![overlap]);
        let n = told.pool_news(&bad, &overlap);
        assert_eq!(
            n,
            [
                Notice {
                    regarding: Regarding::Pool("blue".into()),
                    kind: Kind::Warning,
                    reason: "InvalidPool",
                    note: "spec.addresses[1]: \"x\" is not an address".into(),
                },
                Notice {
                    regarding: Regarding::Pool("red".into()),
                    kind: Kind::Warning,
                    reason: "OverlappingPools",
                    note: "spec.addresses: overlaps VIPPool green".into(),
                }
            ]
        );
        assert!(told.pool_news(&bad, &overlap).is_empty());
        // Fixed, then broken again: told again; a new speaker tells it again too.
        assert!(told.pool_news(&[], &overlap).is_empty());
        assert_eq!(told.pool_news(&bad, &overlap).len(), 1);
        told.forget_cluster();
        assert_eq!(told.pool_news(&bad, &overlap).len(), 2);
    }
}
