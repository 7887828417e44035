//! Address pools for LoadBalancer Services: the `VIPPool` custom resources
//! (`deploy/crds/vippool.yaml`) and the `--address-pool` flag, which is an implicit pool
//! that any Service may use. Pure: the controller caches what it reads here, the allocator
//! (`crate::services`) decides who gets what.

use std::collections::{BTreeMap, BTreeSet};

use crate::services::{Pool, SvcInfo};

/// Name of the implicit pool the `--address-pool` flag makes.
pub const FLAG_POOL: &str = "--address-pool";

/// One pool: its addresses and who may use them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolDef {
    /// `metadata.name` of the VIPPool, or `FLAG_POOL`.
    pub name: String,
    pub ranges: Pool,
    /// Services that name no pool get addresses from it; any Service allowed to use it
    /// may still ask for it by name or for one of its addresses.
    pub auto_assign: bool,
    pub scope: Scope,
}

/// `spec.serviceAllocation`: every given criterion must match; none given admits all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    pub namespaces: Option<BTreeSet<String>>,
    pub namespace_selector: Option<Selector>,
    pub service_selector: Option<Selector>,
}

/// A label selector (`matchLabels` and `matchExpressions`, all of which must match).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

pub type Labels = BTreeMap<String, String>;

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

impl Scope {
    /// Whether `svc` may use the pool; `ns_labels` are the labels of its namespace (empty
    /// when the namespace is unknown, so a namespace selector then admits only by absence).
    pub fn admits(&self, svc: &SvcInfo, ns_labels: &Labels) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.contains(&svc.namespace))
            && self
                .namespace_selector
                .as_ref()
                .is_none_or(|s| s.matches(ns_labels))
            && self
                .service_selector
                .as_ref()
                .is_none_or(|s| s.matches(&svc.labels))
    }
}

impl PoolDef {
    /// The implicit pool of `--address-pool`: any Service, automatic.
    pub fn from_flag(ranges: Pool) -> PoolDef {
        PoolDef {
            name: FLAG_POOL.into(),
            ranges,
            auto_assign: true,
            scope: Scope::default(),
        }
    }
}
