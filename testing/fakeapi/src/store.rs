//! Object storage with a global resourceVersion counter and a full change history.
//!
//! The history is never truncated: `compact()` only raises the floor below which watches
//! and exact lists are refused with 410. Keeping everything lets open watches continue
//! across a compaction and lets paginated lists be served from a consistent snapshot
//! (current state with later changes undone), like etcd does.

use crate::resources::{self, ResourceInfo};
use crate::status::ApiError;
use crate::{admission, crd};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// (apiVersion, kind)
pub type TypeKey = (String, String);
/// (namespace or "", name)
pub type ObjKey = (String, String);

/// One committed mutation. `new == None` is a deletion.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub ty: TypeKey,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<TypeKey, BTreeMap<ObjKey, Value>>,
    rv: u64,
    history: Vec<Change>,
    compacted: u64,
    next_uid: u64,
    /// Served versions of the stored CustomResourceDefinitions (crd.rs).
    crds: Vec<crd::Served>,
}

/// Identity of an object body; namespace normalised by the resource table.
pub struct Ident {
    pub ty: TypeKey,
    pub key: ObjKey,
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr).and_then(Value::as_str)
}

/// Read apiVersion/kind/namespace/name from a body, normalising the namespace: cluster-scoped
/// kinds get none, namespaced kinds default to "default".
fn ident_of(obj: &mut Value, info: Option<&ResourceInfo>) -> Result<Ident, ApiError> {
    let av = str_at(obj, "/apiVersion").unwrap_or_default().to_string();
    let kind = str_at(obj, "/kind").unwrap_or_default().to_string();
    let name = str_at(obj, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    if av.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(ApiError::invalid(
            "object needs apiVersion, kind and metadata.name",
        ));
    }
    let mut ns = str_at(obj, "/metadata/namespace")
        .unwrap_or_default()
        .to_string();
    if let Some(info) = info {
        if !info.namespaced {
            ns.clear();
        } else if ns.is_empty() {
            ns = "default".to_string();
        }
    }
    let meta = meta_mut(obj);
    if ns.is_empty() {
        meta.remove("namespace");
    } else {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    Ok(Ident {
        ty: (av, kind),
        key: (ns, name),
    })
}

/// `metadata` as a mutable map, created if missing or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Value::Object(root) = obj else {
        unreachable!("just made an object")
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// Stored resourceVersion of an object as a number (0 when absent or malformed).
pub fn rv_of(obj: &Value) -> u64 {
    str_at(obj, "/metadata/resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn set_rv(obj: &mut Value, rv: u64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// The part of an object that drives `metadata.generation`: everything but metadata/status.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Value::Object(m) = &mut v {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// RFC 3339 UTC timestamp with second precision, as Kubernetes writes creationTimestamp.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (H. Hinnant), valid for the whole Unix era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Store {
    /// A built-in resource or one registered by a stored CRD, by `apiVersion` and kind.
    pub fn resource_by_kind(&self, api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
        resources::by_kind(api_version, kind).or_else(|| {
            self.crds
                .iter()
                .map(|c| c.info)
                .find(|r| r.kind == kind && r.api_version() == api_version)
        })
    }

    /// Same by URL coordinates.
    pub fn resource_by_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceInfo> {
        resources::by_plural(group, version, plural).or_else(|| {
            self.crds
                .iter()
                .map(|c| c.info)
                .find(|r| r.group == group && r.version == version && r.plural == plural)
        })
    }

    /// Every served resource: the built-in table, then the CRDs' in name order.
    pub fn resources(&self) -> Vec<&'static ResourceInfo> {
        resources::RESOURCES
            .iter()
            .chain(self.crds.iter().map(|c| c.info))
            .collect()
    }

    /// The schema of a custom resource type, if a stored CRD serves it.
    pub fn custom_schema(&self, api_version: &str, kind: &str) -> Option<&Value> {
        self.crds
            .iter()
            .find(|c| c.info.kind == kind && c.info.api_version() == api_version)
            .map(|c| &c.schema)
    }

    fn ident(&self, obj: &mut Value) -> Result<Ident, ApiError> {
        let av = str_at(obj, "/apiVersion").unwrap_or_default().to_string();
        let kind = str_at(obj, "/kind").unwrap_or_default().to_string();
        ident_of(obj, self.resource_by_kind(&av, &kind))
    }

    fn admit(&self, id: &Ident, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        admission::admit(obj, old, self.custom_schema(&id.ty.0, &id.ty.1))
    }

    /// Rebuild the CRD registrations after a CRD was written or deleted.
    fn sync_crds(&mut self, ty: &TypeKey) {
        if !crd::is_crd(&ty.0, &ty.1) {
            return;
        }
        let crds: Vec<crd::Served> = self
            .objects(ty)
            .flat_map(|o| crd::served(o, &self.crds))
            .collect();
        self.crds = crds;
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Watches and exact lists from a resourceVersion below this get 410 Gone.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn compact(&mut self) {
        self.compacted = self.rv;
    }

    pub fn get(&self, ty: &TypeKey, key: &ObjKey) -> Option<&Value> {
        self.objects.get(ty).and_then(|m| m.get(key))
    }

    /// All objects of a type, ordered by (namespace, name).
    pub fn objects(&self, ty: &TypeKey) -> impl Iterator<Item = &Value> {
        self.objects.get(ty).into_iter().flat_map(|m| m.values())
    }

    /// The objects of a type as they were at `rv` (must be >= compacted).
    pub fn snapshot(&self, ty: &TypeKey, rv: u64) -> BTreeMap<ObjKey, Value> {
        let mut snap = self.objects.get(ty).cloned().unwrap_or_default();
        for c in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if &c.ty != ty {
                continue;
            }
            let Some(any) = c.new.as_ref().or(c.old.as_ref()) else {
                continue;
            };
            let key = key_of(any);
            match &c.old {
                Some(old) => snap.insert(key, old.clone()),
                None => snap.remove(&key),
            };
        }
        snap
    }

    /// Changes committed after `rv`, oldest first.
    pub fn changes_since(&self, rv: u64) -> &[Change] {
        let start = self.history.partition_point(|c| c.rv <= rv);
        &self.history[start..]
    }

    /// Insert; 409 AlreadyExists if present.
    pub fn create(&mut self, mut obj: Value) -> Result<Value, ApiError> {
        let id = self.ident(&mut obj)?;
        if self.get(&id.ty, &id.key).is_some() {
            return Err(ApiError::already_exists(format!(
                "{} {:?} already exists",
                id.ty.1, id.key.1
            )));
        }
        self.admit(&id, &mut obj, None)?;
        Ok(self.commit(id, Some(obj)))
    }

    /// Replace an existing object; 404 if missing, 409 if the body carries a stale
    /// metadata.resourceVersion (optimistic concurrency).
    pub fn update(&mut self, mut obj: Value) -> Result<Value, ApiError> {
        let id = self.ident(&mut obj)?;
        let current = self
            .get(&id.ty, &id.key)
            .ok_or_else(|| ApiError::not_found(format!("{} {:?} not found", id.ty.1, id.key.1)))?;
        if let Some(given) = str_at(&obj, "/metadata/resourceVersion").filter(|s| !s.is_empty()) {
            if given != rv_of(current).to_string() {
                return Err(ApiError::conflict(format!(
                    "Operation cannot be fulfilled on {} {:?}: the object has been modified; \
                     please apply your changes to the latest version and try again",
                    id.ty.1, id.key.1
                )));
            }
        }
        let current = current.clone();
        self.admit(&id, &mut obj, Some(&current))?;
        Ok(self.commit(id, Some(obj)))
    }

    /// Create or replace unconditionally (the test-side `apply`).
    pub fn upsert(&mut self, mut obj: Value) -> Result<Value, ApiError> {
        let id = self.ident(&mut obj)?;
        let current = self.get(&id.ty, &id.key).cloned();
        self.admit(&id, &mut obj, current.as_ref())?;
        Ok(self.commit(id, Some(obj)))
    }

    /// Delete; deleting a CRD first deletes every object of the types it served.
    pub fn delete(&mut self, ty: TypeKey, key: ObjKey) -> Option<Value> {
        self.get(&ty, &key)?;
        if crd::is_crd(&ty.0, &ty.1) {
            let served: Vec<TypeKey> = self
                .crds
                .iter()
                .filter(|c| c.crd == key.1)
                .map(|c| (c.info.api_version(), c.info.kind.to_string()))
                .collect();
            for cty in served {
                let keys: Vec<ObjKey> = self.objects(&cty).map(key_of).collect();
                for k in keys {
                    self.commit(
                        Ident {
                            ty: cty.clone(),
                            key: k,
                        },
                        None,
                    );
                }
            }
        }
        let id = Ident { ty, key };
        Some(self.commit(id, None))
    }

    /// Bump the global resourceVersion, stamp server-owned metadata, record history.
    /// Returns the stored object (or, for deletions, the last state with the new RV).
    fn commit(&mut self, id: Ident, new: Option<Value>) -> Value {
        self.rv += 1;
        let rv = self.rv;
        let objects = self.objects.entry(id.ty.clone()).or_default();
        let old = objects.get(&id.key).cloned();
        let deleted = new.is_none();
        let result = match new {
            Some(mut obj) => {
                let (uid, created, generation) = match &old {
                    Some(o) => {
                        let gen_old = o
                            .pointer("/metadata/generation")
                            .and_then(Value::as_i64)
                            .unwrap_or(1);
                        let bump = spec_part(o) != spec_part(&obj);
                        (
                            o.pointer("/metadata/uid").cloned(),
                            o.pointer("/metadata/creationTimestamp").cloned(),
                            gen_old + i64::from(bump),
                        )
                    }
                    None => (None, None, 1),
                };
                let uid = uid.unwrap_or_else(|| {
                    self.next_uid += 1;
                    Value::String(format!("00000000-0000-4000-8000-{:012x}", self.next_uid))
                });
                let created = created.unwrap_or_else(|| Value::String(now_rfc3339()));
                let meta = meta_mut(&mut obj);
                meta.insert("name".into(), Value::String(id.key.1.clone()));
                meta.insert("uid".into(), uid);
                meta.insert("creationTimestamp".into(), created);
                meta.insert("generation".into(), json!(generation));
                meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
                objects.insert(id.key.clone(), obj.clone());
                obj
            }
            None => {
                objects.remove(&id.key);
                let mut last = old.clone().unwrap_or_else(|| json!({}));
                set_rv(&mut last, rv);
                last
            }
        };
        self.sync_crds(&id.ty);
        self.history.push(Change {
            rv,
            ty: id.ty,
            old,
            new: (!deleted).then(|| result.clone()),
        });
        result
    }
}

pub fn key_of(obj: &Value) -> ObjKey {
    (
        str_at(obj, "/metadata/namespace")
            .unwrap_or_default()
            .to_string(),
        str_at(obj, "/metadata/name")
            .unwrap_or_default()
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, data: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "ns"}, "data": {"k": data}})
    }

    #[test]
    fn rv_history_and_snapshot() {
        let mut s = Store::default();
        let ty: TypeKey = ("v1".into(), "ConfigMap".into());
        let a = s.create(cm("a", "1")).expect("create");
        assert_eq!(rv_of(&a), 1);
        assert_eq!(a["metadata"]["generation"], 1);
        assert!(s.create(cm("a", "1")).is_err());
        let a2 = s.update(cm("a", "2")).expect("update");
        assert_eq!(a2["metadata"]["generation"], 2);
        assert_eq!(a2["metadata"]["uid"], a["metadata"]["uid"]);
        let mut stale = cm("a", "3");
        set_rv(&mut stale, 1);
        assert_eq!(s.update(stale).map_err(|e| e.code), Err(409));
        s.create(cm("b", "1")).expect("create b");
        let d = s
            .delete(ty.clone(), ("ns".into(), "a".into()))
            .expect("del");
        assert_eq!(rv_of(&d), 4);
        assert!(s.changes_since(3)[0].new.is_none());
        let snap = s.snapshot(&ty, 1);
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[&("ns".into(), "a".into())]["data"]["k"], "1");
        assert_eq!(s.snapshot(&ty, 4).len(), 1);
        assert_eq!(s.changes_since(2).len(), 2);
    }

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
