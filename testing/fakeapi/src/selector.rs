//! Label and field selectors, parsed the way the apiserver accepts them in query strings.

use crate::status::ApiError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::Eq(want), Some(v)) => v == want,
            (Op::Ne(want), Some(v)) => v != want,
            (Op::In(set), Some(v)) => set.iter().any(|s| s == v),
            (Op::NotIn(set), Some(v)) => !set.iter().any(|s| s == v),
            (Op::Exists, v) => v.is_some(),
            (Op::NotExists, v) => v.is_none(),
            // A missing key never equals and is never in a set, but satisfies != and notin.
            (Op::Eq(_) | Op::In(_), None) => false,
            (Op::Ne(_) | Op::NotIn(_), None) => true,
        }
    }
}

/// `labelSelector`: all requirements must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

/// Split at commas that are not inside `( )`, so `k in (a,b),x=y` is two requirements.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_set(rest: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {raw}")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_requirement(raw: &str) -> Result<Requirement, ApiError> {
    let s = raw.trim();
    let bad = || ApiError::bad_request(format!("unable to parse requirement: {raw:?}"));
    if let Some(key) = s.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key)
            .then(|| Requirement {
                key: key.to_string(),
                op: Op::NotExists,
            })
            .ok_or_else(bad);
    }
    // Set-based forms: `key in (..)` / `key notin (..)`.
    let mut words = s.splitn(2, char::is_whitespace);
    let first = words.next().unwrap_or_default();
    if let Some(rest) = words.next() {
        let rest = rest.trim_start();
        let (op, tail) = if let Some(t) = rest.strip_prefix("notin") {
            (true, t)
        } else if let Some(t) = rest.strip_prefix("in") {
            (false, t)
        } else {
            (false, "")
        };
        if tail.trim_start().starts_with('(') && valid_key(first) {
            let set = parse_set(tail, raw)?;
            let op = if op { Op::NotIn(set) } else { Op::In(set) };
            return Ok(Requirement {
                key: first.to_string(),
                op,
            });
        }
    }
    let (key, op) = if let Some((k, v)) = s.split_once("!=") {
        (k, Op::Ne(v.trim().to_string()))
    } else if let Some((k, v)) = s.split_once("==") {
        (k, Op::Eq(v.trim().to_string()))
    } else if let Some((k, v)) = s.split_once('=') {
        (k, Op::Eq(v.trim().to_string()))
    } else {
        (s, Op::Exists)
    };
    let key = key.trim();
    if !valid_key(key) {
        return Err(bad());
    }
    Ok(Requirement {
        key: key.to_string(),
        op,
    })
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let reqs = split_top_level(s)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<_, _>>()?;
        Ok(Self { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.reqs.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            r.matches(v)
        })
    }
}

/// Field labels the apiserver supports per kind (its `GetAttrs`/field label conversion
/// functions), besides `metadata.name` and `metadata.namespace` which every kind has.
/// Anything else is 400 "field label not supported", as on a real cluster.
fn kind_fields(api_version: &str, kind: &str) -> &'static [&'static str] {
    match (api_version, kind) {
        ("v1", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("v1", "Node") => &["spec.unschedulable"],
        ("v1", "Namespace") => &["status.phase"],
        ("v1", "Secret") => &["type"],
        ("v1", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io/v1", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        _ => &[],
    }
}

/// Fields whose Go type is a bool: an absent one reads "false", not "".
const BOOL_FIELDS: &[&str] = &["spec.unschedulable", "spec.hostNetwork"];

/// `fieldSelector`: `path=v`, `path==v`, `path!=v`, comma-separated (AND), over the field
/// labels the kind supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<Requirement>,
}

impl FieldSelector {
    /// Parse for objects of (apiVersion, kind).
    pub fn parse_for(s: &str, api_version: &str, kind: &str) -> Result<Self, ApiError> {
        let sel = Self::parse(s)?;
        let allowed = kind_fields(api_version, kind);
        for r in &sel.reqs {
            let known = matches!(r.key.as_str(), "metadata.name" | "metadata.namespace")
                || allowed.contains(&r.key.as_str());
            if !known {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.key
                )));
            }
        }
        Ok(sel)
    }

    /// Parse without the per-kind check (syntax only).
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut reqs = Vec::new();
        for raw in s.split(',') {
            let (key, op) = if let Some((k, v)) = raw.split_once("!=") {
                (k, Op::Ne(v.to_string()))
            } else if let Some((k, v)) = raw.split_once("==") {
                (k, Op::Eq(v.to_string()))
            } else if let Some((k, v)) = raw.split_once('=') {
                (k, Op::Eq(v.to_string()))
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {raw:?}"
                )));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {raw:?}"
                )));
            }
            reqs.push(Requirement {
                key: key.to_string(),
                op,
            });
        }
        Ok(Self { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| {
            let mut cur = Some(obj);
            for part in r.key.split('.') {
                cur = cur.and_then(|c| c.get(part));
            }
            // Fields compare as strings; an absent field reads as "" (apiserver behaviour
            // for e.g. metadata.namespace of cluster-scoped objects).
            let v = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ if BOOL_FIELDS.contains(&r.key.as_str()) => "false".to_string(),
                _ => String::new(),
            };
            r.matches(Some(&v))
        })
    }
}

/// What a list or watch request selects: one type, optionally one namespace, selectors.
#[derive(Debug, Clone)]
pub struct Filter {
    pub ty: crate::store::TypeKey,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| {
            obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
        });
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_forms() {
        let o = obj(json!({"edgenode": "true", "zone": "b"}));
        let m = |s: &str| LabelSelector::parse(s).expect(s).matches(&o);
        assert!(m(""));
        assert!(m("edgenode=true"));
        assert!(m("edgenode==true"));
        assert!(!m("edgenode!=true"));
        assert!(m("missing!=x"));
        assert!(m("edgenode"));
        assert!(!m("!edgenode"));
        assert!(m("!missing"));
        assert!(m("zone in (a,b)"));
        assert!(!m("zone notin (a, b)"));
        assert!(m("zone in (a,b),edgenode=true"));
        assert!(!m("zone in (a,b),edgenode=false"));
        assert!(m("missing notin (a)"));
        assert!(!m("missing in (a)"));
        assert!(!m("missing"));
        assert!(LabelSelector::parse("a b c").is_err());
        assert!(LabelSelector::parse("x in (a").is_err());
    }

    #[test]
    fn field_forms() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).expect(s).matches(&o);
        assert!(m("metadata.name=a"));
        assert!(m("metadata.name==a,metadata.namespace=ns"));
        assert!(!m("metadata.name!=a"));
        assert!(m("metadata.namespace!=other"));
        assert!(!m("metadata.name=b"));
        assert!(FieldSelector::parse("metadata.name").is_err());
    }

    #[test]
    fn field_labels_per_kind() {
        let ok = |s: &str, av: &str, kind: &str| FieldSelector::parse_for(s, av, kind).is_ok();
        assert!(ok(
            "metadata.name=a,metadata.namespace!=b",
            "v1",
            "ConfigMap"
        ));
        assert!(ok("spec.nodeName=n,status.phase=Running", "v1", "Pod"));
        assert!(!ok("spec.nodeName=n", "v1", "Node"));
        assert!(!ok("spec.type=LoadBalancer", "v1", "Service"));
        assert!(!ok("data.k=v", "v1", "ConfigMap"));
        let e = FieldSelector::parse_for("metadata.labels=x", "v1", "Node").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "field label not supported: metadata.labels")
        );
        // An absent bool field reads "false".
        let n = json!({"metadata": {"name": "n"}});
        let sel = FieldSelector::parse_for("spec.unschedulable=false", "v1", "Node").unwrap();
        assert!(sel.matches(&n));
    }
}
