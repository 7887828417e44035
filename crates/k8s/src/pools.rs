//! Address pools for LoadBalancer Services: the `VIPPool` custom resources
//! (`deploy/crds/vippool.yaml`) and the `--address-pool` flag, which is an implicit pool
//! that any Service may use. Pure: the controller caches what it reads here, the allocator
//! (`crate::services`) decides who gets what.
//!
//! - `from_object` reads a VIPPool as hostile input: every problem is collected with its
//!   field path and value, counts are bounded, and a pool with any problem is refused whole
//!   (a half-read scope could admit Services it was meant to keep out).
//! - `overlaps` finds addresses two pools share, `usage` counts addresses in use per pool,
//!   `PoolStatus` is what the allocator records in a VIPPool's status.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::Reject;
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

/// Bounds on a VIPPool's lists: the API server bounds the object's size only, and every
/// pool is matched against every Service on each rebuild.
pub const MAX_ADDRESSES: usize = 1024;
pub const MAX_NAMESPACES: usize = 1024;
/// Per selector: `matchLabels` entries, `matchExpressions`, and values of one expression.
pub const MAX_SELECTOR_ENTRIES: usize = 64;

/// The `apiVersion` and `kind` of a VIPPool.
pub const API_VERSION: &str = "edgevip.io/v1alpha1";
pub const KIND: &str = "VIPPool";

/// The VIPPool resource, for `Api<DynamicObject>`: cluster-scoped.
pub fn api_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("edgevip.io", "v1alpha1", KIND),
        "vippools",
    )
}

/// Problems of one object, collected rather than returned at the first.
pub(crate) struct Problems {
    object: String,
    pub(crate) list: Vec<Reject>,
}

impl Problems {
    pub(crate) fn new(object: &str) -> Problems {
        Problems {
            object: object.to_string(),
            list: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Reject {
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// A value as a message shows it: JSON, cut short (hostile input may be long).
pub(crate) fn shown(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 80;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// The strings of a list at `field` with their indices, at most `max`; `None` (with the
/// problem) when it is no list or too long.
fn strings<'a>(
    v: &'a Value,
    field: &str,
    max: usize,
    p: &mut Problems,
) -> Option<Vec<(usize, &'a str)>> {
    let Some(items) = v.as_array() else {
        p.add(field, format!("{} is not a list", shown(v)));
        return None;
    };
    if items.len() > max {
        p.add(field, format!("{} entries: at most {max}", items.len()));
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push((i, s)),
            None => p.add(
                format!("{field}[{i}]"),
                format!("{} is not a string", shown(item)),
            ),
        }
    }
    Some(out)
}

/// Reads a VIPPool (the object as JSON). A pool with any problem is refused whole: the
/// rejects name each field and value, the object as `VIPPool <name>`.
pub fn from_object(obj: &Value) -> Result<PoolDef, Vec<Reject>> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut p = Problems {
        object: format!("{KIND} {name}"),
        list: Vec::new(),
    };
    let spec = &obj["spec"];
    if !spec.is_object() {
        p.add("spec", format!("{} is not an object", shown(spec)));
        return Err(p.list);
    }
    let ranges = addresses(&spec["addresses"], &mut p);
    let auto_assign = match &spec["autoAssign"] {
        // The CRD defaults it; an object written before the default existed has none.
        Value::Null => true,
        Value::Bool(b) => *b,
        v => {
            p.add(
                "spec.autoAssign",
                format!("{} is not true or false", shown(v)),
            );
            true
        }
    };
    let scope = scope(&spec["serviceAllocation"], &mut p);
    match &spec["announce"] {
        Value::Null => {}
        Value::String(a) if a == "arp" => {}
        // Refused rather than served over VRRP: the operator asked for routes.
        Value::String(a) if a == "bgp" => p.add(
            "spec.announce",
            "\"bgp\": LoadBalancer VIPs over BGP are not served yet; use a ConfigMap entry with announce: bgp",
        ),
        v => p.add("spec.announce", format!("{} is not arp or bgp", shown(v))),
    }
    if p.list.is_empty() {
        Ok(PoolDef {
            name: name.to_string(),
            ranges,
            auto_assign,
            scope,
        })
    } else {
        Err(p.list)
    }
}

/// `spec.addresses`: one CIDR, range `a-b` or address per entry.
fn addresses(v: &Value, p: &mut Problems) -> Pool {
    const FIELD: &str = "spec.addresses";
    let mut out = Vec::new();
    if v.is_null() {
        p.add(FIELD, "missing: a pool needs at least one address");
        return Pool(out);
    }
    let Some(items) = strings(v, FIELD, MAX_ADDRESSES, p) else {
        return Pool(out);
    };
    if v.as_array().is_some_and(Vec::is_empty) {
        p.add(FIELD, "empty: a pool needs at least one address");
    }
    for (i, s) in items {
        let field = format!("{FIELD}[{i}]");
        // `Pool::parse` reads a comma-separated list: here a comma would smuggle in more.
        if s.trim().is_empty() || s.contains(',') {
            p.add(
                field,
                format!("{s:?} is not one CIDR, range a-b or address"),
            );
            continue;
        }
        // `Pool::parse` would overflow on an IPv6 /0; no pool means every address anyway.
        if s.split_once('/')
            .is_some_and(|(_, len)| len.parse::<u32>() == Ok(0))
        {
            p.add(field, format!("{s:?}: a /0 holds every address"));
            continue;
        }
        match Pool::parse(s) {
            Ok(one) => out.extend(one.0),
            Err(m) if m.contains(&format!("{s:?}")) => p.add(field, m),
            Err(m) => p.add(field, format!("{s:?}: {m}")),
        }
    }
    Pool(out)
}

/// `spec.serviceAllocation`; absent admits every Service.
fn scope(v: &Value, p: &mut Problems) -> Scope {
    const FIELD: &str = "spec.serviceAllocation";
    let mut scope = Scope::default();
    if v.is_null() {
        return scope;
    }
    if !v.is_object() {
        p.add(FIELD, format!("{} is not an object", shown(v)));
        return scope;
    }
    let ns = &v["namespaces"];
    if !ns.is_null() {
        let field = format!("{FIELD}.namespaces");
        if let Some(names) = strings(ns, &field, MAX_NAMESPACES, p) {
            if ns.as_array().is_some_and(Vec::is_empty) {
                // Literally it admits no Service; more likely meant as "no restriction".
                p.add(field, "empty: name a namespace, or leave the field out");
            }
            scope.namespaces = Some(names.into_iter().map(|(_, n)| n.to_string()).collect());
        }
    }
    scope.namespace_selector = selector(
        &v["namespaceSelector"],
        &format!("{FIELD}.namespaceSelector"),
        p,
    );
    scope.service_selector = selector(
        &v["serviceSelector"],
        &format!("{FIELD}.serviceSelector"),
        p,
    );
    scope
}

/// A label selector at `field`; absent is `None`, `{}` matches everything (as in
/// Kubernetes).
pub(crate) fn selector(v: &Value, field: &str, p: &mut Problems) -> Option<Selector> {
    if v.is_null() {
        return None;
    }
    let Some(obj) = v.as_object() else {
        p.add(field, format!("{} is not an object", shown(v)));
        return None;
    };
    let mut sel = Selector::default();
    let labels = &obj.get("matchLabels").unwrap_or(&Value::Null);
    if !labels.is_null() {
        let at = format!("{field}.matchLabels");
        match labels.as_object() {
            None => p.add(at, format!("{} is not an object", shown(labels))),
            Some(m) if m.len() > MAX_SELECTOR_ENTRIES => p.add(
                at,
                format!("{} entries: at most {MAX_SELECTOR_ENTRIES}", m.len()),
            ),
            Some(m) => {
                for (k, val) in m {
                    match val.as_str() {
                        Some(s) => {
                            sel.match_labels.insert(k.clone(), s.to_string());
                        }
                        None => p.add(
                            format!("{at}[{k:?}]"),
                            format!("{} is not a string", shown(val)),
                        ),
                    }
                }
            }
        }
    }
    let exprs = obj.get("matchExpressions").unwrap_or(&Value::Null);
    if !exprs.is_null() {
        let at = format!("{field}.matchExpressions");
        match exprs.as_array() {
            None => p.add(at, format!("{} is not a list", shown(exprs))),
            Some(l) if l.len() > MAX_SELECTOR_ENTRIES => p.add(
                at,
                format!("{} entries: at most {MAX_SELECTOR_ENTRIES}", l.len()),
            ),
            Some(l) => {
                for (i, e) in l.iter().enumerate() {
                    if let Some(r) = requirement(e, &format!("{at}[{i}]"), p) {
                        sel.match_expressions.push(r);
                    }
                }
            }
        }
    }
    Some(sel)
}

/// One `matchExpressions` entry: In and NotIn need values, Exists and DoesNotExist take
/// none (as the API server's own selectors).
fn requirement(e: &Value, at: &str, p: &mut Problems) -> Option<Requirement> {
    if !e.is_object() {
        p.add(at, format!("{} is not an object", shown(e)));
        return None;
    }
    let key = match e["key"].as_str() {
        Some(k) if !k.is_empty() => k.to_string(),
        _ => {
            p.add(
                format!("{at}.key"),
                format!("{} is not a label key", shown(&e["key"])),
            );
            return None;
        }
    };
    let values: BTreeSet<String> = match &e["values"] {
        Value::Null => BTreeSet::new(),
        v => strings(v, &format!("{at}.values"), MAX_SELECTOR_ENTRIES, p)?
            .into_iter()
            .map(|(_, s)| s.to_string())
            .collect(),
    };
    let op = &e["operator"];
    let needs_values = match op.as_str() {
        Some("In" | "NotIn") => true,
        Some("Exists" | "DoesNotExist") => false,
        _ => {
            p.add(
                format!("{at}.operator"),
                format!("{} is not In, NotIn, Exists or DoesNotExist", shown(op)),
            );
            return None;
        }
    };
    let op = op.as_str().unwrap_or_default();
    if needs_values == values.is_empty() {
        let why = if needs_values {
            "needs values"
        } else {
            "takes no values"
        };
        p.add(format!("{at}.values"), format!("operator {op} {why}"));
        return None;
    }
    Some(match op {
        "In" => Requirement::In(key, values),
        "NotIn" => Requirement::NotIn(key, values),
        "Exists" => Requirement::Exists(key),
        _ => Requirement::DoesNotExist(key),
    })
}

/// An address as a number within its family, and its family (IPv4: `true`).
fn num(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v) => (true, u128::from(u32::from(v))),
        IpAddr::V6(v) => (false, u128::from(v)),
    }
}

/// Distinct addresses of `pool` (entries may overlap), saturating at `u128::MAX`.
pub fn size(pool: &Pool) -> u128 {
    let mut ranges: Vec<(bool, u128, u128)> = pool
        .0
        .iter()
        .map(|(a, b)| (num(*a).0, num(*a).1, num(*b).1))
        .collect();
    ranges.sort();
    let mut total: u128 = 0;
    // The current merged run: family, low, high.
    let mut run: Option<(bool, u128, u128)> = None;
    let count = |(_, lo, hi): (bool, u128, u128)| (hi - lo).saturating_add(1);
    for r in ranges {
        match &mut run {
            Some((v4, _, hi)) if *v4 == r.0 && r.1 <= hi.saturating_add(1) => *hi = (*hi).max(r.2),
            _ => {
                if let Some(done) = run.replace(r) {
                    total = total.saturating_add(count(done));
                }
            }
        }
    }
    total.saturating_add(run.map_or(0, count))
}

/// Addresses two pools share: one warning per pair, on the later pool (`pools` in
/// `pool_defs` order, so the flag's pool is never the one warned about).
pub fn overlaps(pools: &[PoolDef]) -> Vec<Reject> {
    // Every range, by family and start: a sweep compares each with the pools still open
    // (per pool, the furthest end reached), so the cost is ranges × pools, not ranges².
    let mut ranges: Vec<(bool, u128, u128, usize)> = pools
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.ranges
                .0
                .iter()
                .map(move |(a, b)| (num(*a).0, num(*a).1, num(*b).1, i))
        })
        .collect();
    ranges.sort();
    let mut found: BTreeMap<(usize, usize), (bool, u128)> = BTreeMap::new();
    // Pool → (family, furthest end) of its ranges that may still overlap what follows.
    let mut open: BTreeMap<usize, (bool, u128)> = BTreeMap::new();
    for (v4, lo, hi, i) in ranges {
        open.retain(|_, (f, end)| *f == v4 && *end >= lo);
        for &j in open.keys() {
            if j != i {
                found.entry((i.min(j), i.max(j))).or_insert((v4, lo));
            }
        }
        let end = open.entry(i).or_insert((v4, hi));
        end.1 = end.1.max(hi);
    }
    let label = |p: &PoolDef| {
        if p.name == FLAG_POOL {
            FLAG_POOL.to_string()
        } else {
            format!("{KIND} {}", p.name)
        }
    };
    found
        .into_iter()
        .map(|((a, b), (v4, x))| {
            let ip = if v4 {
                IpAddr::V4((x as u32).into())
            } else {
                IpAddr::V6(x.into())
            };
            Reject {
                object: label(&pools[b]),
                field: "spec.addresses".into(),
                message: format!(
                    "overlaps {}: {ip} (at least) is in both; it counts as {}'s",
                    label(&pools[a]),
                    pools[a].name
                ),
            }
        })
        .collect()
}

/// How much of a pool is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUse {
    pub allocated: u64,
    /// Distinct addresses in the pool's ranges (saturating).
    pub size: u128,
}

impl PoolUse {
    pub fn free(&self) -> u128 {
        self.size.saturating_sub(u128::from(self.allocated))
    }
}

/// Use of each pool: an address in use counts in the first pool (in `pools` order) that
/// holds it, once however many times it is given.
pub fn usage(pools: &[PoolDef], in_use: impl Iterator<Item = IpAddr>) -> BTreeMap<String, PoolUse> {
    let mut out: BTreeMap<String, PoolUse> = pools
        .iter()
        .map(|p| {
            let u = PoolUse {
                allocated: 0,
                size: size(&p.ranges),
            };
            (p.name.clone(), u)
        })
        .collect();
    let distinct: BTreeSet<IpAddr> = in_use.collect();
    for ip in distinct {
        if let Some(p) = pools.iter().find(|p| p.ranges.contains(ip))
            && let Some(u) = out.get_mut(&p.name)
        {
            u.allocated += 1;
        }
    }
    out
}

/// The `Ready` condition of a VIPPool, its time aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// `True` or `False`.
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// What a VIPPool's status says, times aside: the allocator writes it when what it
/// computes differs from what the object holds (`None`: the object has no such field).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolStatus {
    pub allocated: Option<u64>,
    pub free: Option<u128>,
    pub ready: Option<Ready>,
}

/// Condition messages are bounded too (the CRD allows 32 kB; a reader wants far less).
const MAX_MESSAGE: usize = 1000;

impl PoolStatus {
    /// What the object's `status` holds; fields of another shape read as absent.
    pub fn observed(status: &Value) -> PoolStatus {
        let free = match &status["free"] {
            Value::Number(n) => n.as_u64().map(u128::from),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let ready = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .map(|c| Ready {
                status: c["status"].as_str().unwrap_or_default().to_string(),
                reason: c["reason"].as_str().unwrap_or_default().to_string(),
                message: c["message"].as_str().unwrap_or_default().to_string(),
            });
        PoolStatus {
            allocated: status["allocated"].as_u64(),
            free,
            ready,
        }
    }

    /// The status of a valid pool.
    pub fn valid(u: &PoolUse) -> PoolStatus {
        PoolStatus {
            allocated: Some(u.allocated),
            free: Some(u.free()),
            ready: Some(Ready {
                status: "True".into(),
                reason: "Accepted".into(),
                message: "edgevip allocates from these addresses".into(),
            }),
        }
    }

    /// The status of a refused pool: nothing in use, nothing free, and why.
    pub fn invalid(rejects: &[Reject]) -> PoolStatus {
        let mut message = rejects
            .iter()
            .map(|r| format!("{}: {}", r.field, r.message))
            .collect::<Vec<_>>()
            .join("; ");
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        PoolStatus {
            allocated: Some(0),
            free: Some(0),
            ready: Some(Ready {
                status: "False".into(),
                reason: "InvalidSpec".into(),
                message,
            }),
        }
    }

    /// The `status` to write over `existing` (the object's): `free` an integer while it
    /// fits int64, else a decimal string; the Ready condition keeps its
    /// `lastTransitionTime` unless its status changes (`now`, RFC 3339, when it does);
    /// other writers' conditions stay.
    pub fn to_json(&self, existing: &Value, now: &str) -> Value {
        let free = match self.free {
            Some(f) => match i64::try_from(f) {
                Ok(n) => json!(n),
                Err(_) => json!(f.to_string()),
            },
            None => Value::Null,
        };
        let old = existing["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions: Vec<Value> = old
            .iter()
            .filter(|c| c["type"] != "Ready")
            .cloned()
            .collect();
        if let Some(r) = &self.ready {
            let since = old
                .iter()
                .find(|c| c["type"] == "Ready" && c["status"] == r.status.as_str())
                .and_then(|c| c["lastTransitionTime"].as_str())
                .unwrap_or(now);
            conditions.push(json!({
                "type": "Ready",
                "status": r.status,
                "reason": r.reason,
                "message": r.message,
                "lastTransitionTime": since,
            }));
        }
        json!({"allocated": self.allocated, "free": free, "conditions": conditions})
    }
}

#[cfg(test)]
mod tests;
