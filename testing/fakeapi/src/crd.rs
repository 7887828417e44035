//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): a created CRD registers one
//! resource per served version (routes.rs serves it, discovery lists it, RBAC sees it by
//! group/resource like a built-in kind); its custom resources are checked against the
//! version's `openAPIV3Schema` as kube-apiserver's structural schema handling does:
//!
//! 1. nulls in fields that are not `nullable` are dropped (pruned before defaulting);
//! 2. `default`s are applied where a field is missing;
//! 3. fields the schema does not name are unknown: with `fieldValidation=Strict` (the
//!    fake's default) a 400 naming them, otherwise pruned; `x-kubernetes-preserve-unknown-fields`
//!    keeps them. `apiVersion`, `kind` and `metadata` are always known (metadata is
//!    checked as an ObjectMeta);
//! 4. validation: `type` (and `x-kubernetes-int-or-string`), `required`, `enum`,
//!    `pattern`, `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`,
//!    422 with the real server's wording.
//!
//! Not done: `x-kubernetes-validations` (CEL), `format`, `oneOf`/`anyOf`/`allOf`/`not`,
//! list-type uniqueness, version conversion (every version stores its own objects), the
//! scale subresource, defaulting on read.

use crate::resources::ResourceInfo;
use crate::status::ApiError;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

pub const CRD_API_VERSION: &str = "apiextensions.k8s.io/v1";
pub const CRD_KIND: &str = "CustomResourceDefinition";

/// One served version of a registered CRD.
#[derive(Debug, Clone)]
pub struct Served {
    /// Leaked once per registration: the resource table hands out `&'static` entries, and
    /// a test process registers a handful of CRDs.
    pub info: &'static ResourceInfo,
    /// `metadata.name` of the CRD (`plural.group`).
    pub crd: String,
    /// The version's `openAPIV3Schema`.
    pub schema: Value,
}

pub fn is_crd(api_version: &str, kind: &str) -> bool {
    api_version == CRD_API_VERSION && kind == CRD_KIND
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// The served versions of a CRD object (already admitted). `known` are the current
/// registrations: an unchanged entry is reused rather than leaked again.
pub fn served(crd: &Value, known: &[Served]) -> Vec<Served> {
    let Ok(typed) = serde_json::from_value::<CustomResourceDefinition>(crd.clone()) else {
        return Vec::new();
    };
    let name = typed.metadata.name.clone().unwrap_or_default();
    let spec = &typed.spec;
    spec.versions
        .iter()
        .filter(|v| v.served)
        .map(|v| {
            let want = ResourceInfo {
                group: "",
                version: "",
                plural: "",
                kind: "",
                namespaced: spec.scope == "Namespaced",
                status_subresource: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            };
            let same = |i: &ResourceInfo| {
                i.group == spec.group
                    && i.version == v.name
                    && i.plural == spec.names.plural
                    && i.kind == spec.names.kind
                    && i.namespaced == want.namespaced
                    && i.status_subresource == want.status_subresource
            };
            let info = known
                .iter()
                .map(|s| s.info)
                .find(|i| same(i))
                .unwrap_or_else(|| {
                    Box::leak(Box::new(ResourceInfo {
                        group: leak(&spec.group),
                        version: leak(&v.name),
                        plural: leak(&spec.names.plural),
                        kind: leak(&spec.names.kind),
                        ..want
                    }))
                });
            let schema = v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or(Value::Null);
            Served {
                info,
                crd: name.clone(),
                schema,
            }
        })
        .collect()
}

/// Validation of a CRD itself (the parts a wrong manifest would hit), plus the status the
/// apiextensions controllers would post: names accepted, Established.
pub fn admit_definition(obj: &mut Value) -> Result<(), ApiError> {
    let typed: CustomResourceDefinition = serde_json::from_value(obj.clone())
        .map_err(|e| crate::validation::invalid(obj, &[format!("spec: {e}")]))?;
    let spec = &typed.spec;
    let mut errs = Vec::new();
    let name = typed.metadata.name.as_deref().unwrap_or_default();
    let want = format!("{}.{}", spec.names.plural, spec.group);
    if name != want {
        errs.push(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
        ));
    }
    if !spec.group.contains('.') {
        errs.push(format!(
            "spec.group: Invalid value: {:?}: should be a domain with at least one dot",
            spec.group
        ));
    }
    if !matches!(spec.scope.as_str(), "Cluster" | "Namespaced") {
        errs.push(format!(
            "spec.scope: Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
            spec.scope
        ));
    }
    if spec.versions.is_empty() {
        errs.push("spec.versions: Invalid value: null: must have exactly one version marked as storage version".into());
    }
    let storage = spec.versions.iter().filter(|v| v.storage).count();
    if !spec.versions.is_empty() && storage != 1 {
        errs.push(format!(
            "spec.versions: Invalid value: {storage}: must have exactly one version marked as storage version"
        ));
    }
    for (i, v) in spec.versions.iter().enumerate() {
        let root = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        match root {
            None => errs.push(format!("spec.versions[{i}].schema.openAPIV3Schema: Required value: schemas are required")),
            Some(s) if s.type_.as_deref() != Some("object") => errs.push(format!(
                "spec.versions[{i}].schema.openAPIV3Schema.type: Invalid value: {:?}: must be object at the root",
                s.type_.clone().unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    if !errs.is_empty() {
        return Err(crate::validation::invalid(obj, &errs));
    }
    let names = serde_json::to_value(&spec.names).unwrap_or(Value::Null);
    let stored: Vec<&str> = spec
        .versions
        .iter()
        .filter(|v| v.storage)
        .map(|v| v.name.as_str())
        .collect();
    obj["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": crate::store::now_rfc3339()},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": crate::store::now_rfc3339()},
        ],
    });
    Ok(())
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

/// Drop non-nullable nulls and unknown fields (collected as dotted paths), in place.
pub fn prune(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_all = preserves(schema) || schema["x-kubernetes-int-or-string"] == true;
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let at_root_meta =
                    path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                if at_root_meta {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&k)).or(extra);
                match sub {
                    Some(s) => {
                        let is_null = m.get(&k).is_some_and(Value::is_null);
                        if is_null && s["nullable"] != true {
                            m.remove(&k);
                        } else if let Some(cv) = m.get_mut(&k) {
                            prune(s, cv, &child(path, &k), unknown);
                        }
                    }
                    None if keep_all
                        || schema.get("additionalProperties") == Some(&Value::Bool(true)) => {}
                    None => {
                        m.remove(&k);
                        unknown.push(child(path, &k));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(s, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Apply `default`s to missing fields, recursively (defaults are defaulted too).
pub fn default(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, s) in props {
                    if let Some(d) = s.get("default").filter(|_| !m.contains_key(k)) {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(cv) = m.get_mut(k) {
                        default(s, cv);
                    }
                }
            }
            if let Some(s) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for cv in m.values_mut() {
                    default(s, cv);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    default(s, item);
                }
            }
        }
        _ => {}
    }
}

/// The Go type name the apiserver prints for a value.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Validate `v` (defaulted and pruned) against `schema`, collecting `field: message`.
pub fn validate(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if v.is_null() {
        if schema["nullable"] != true {
            errs.push(format!(
                "{shown}: Invalid value: \"null\": {shown} in body must be of type {}: \"null\"",
                schema["type"].as_str().unwrap_or("object")
            ));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errs.push(format!(
                "{shown}: Invalid value: {:?}: {shown} in body must be of type integer,string: {:?}",
                go_type(v),
                go_type(v)
            ));
            return;
        }
    } else if let Some(ty) = schema["type"].as_str().filter(|ty| !type_ok(ty, v)) {
        errs.push(format!(
            "{shown}: Invalid value: {:?}: {shown} in body must be of type {ty}: {:?}",
            go_type(v),
            go_type(v)
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array().filter(|a| !a.contains(v)) {
        let list: Vec<String> = allowed.iter().map(show).collect();
        errs.push(format!(
            "{shown}: Unsupported value: {}: supported values: {}",
            show(v),
            list.join(", ")
        ));
    }
    match v {
        Value::String(s) => {
            if let Some(p) = schema["pattern"].as_str() {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(s) => errs.push(format!(
                        "{shown}: Invalid value: {s:?}: {shown} in body should match '{p}'"
                    )),
                    _ => {}
                }
            }
            let n = s.chars().count() as u64;
            if let Some(min) = schema["minLength"].as_u64().filter(|m| n < *m) {
                errs.push(format!("{shown}: Invalid value: {s:?}: {shown} in body should be at least {min} chars long"));
            }
            if let Some(max) = schema["maxLength"].as_u64().filter(|m| n > *m) {
                errs.push(format!(
                    "{shown}: Too long: may not be more than {max} bytes"
                ));
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or_default();
            if let Some(min) = schema["minimum"].as_f64().filter(|m| x < *m) {
                errs.push(format!("{shown}: Invalid value: {num}: {shown} in body should be greater than or equal to {min}"));
            }
            if let Some(max) = schema["maximum"].as_f64().filter(|m| x > *m) {
                errs.push(format!("{shown}: Invalid value: {num}: {shown} in body should be less than or equal to {max}"));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = schema["minItems"].as_u64().filter(|m| n < *m) {
                errs.push(format!(
                    "{shown}: Invalid value: {n}: {shown} in body should have at least {min} items"
                ));
            }
            if let Some(max) = schema["maxItems"].as_u64().filter(|m| n > *m) {
                errs.push(format!(
                    "{shown}: Too many: {n}: must have at most {max} items"
                ));
            }
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    validate(s, item, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::Object(m) => {
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                if !m.contains_key(r) {
                    errs.push(format!("{}: Required value", child(path, r)));
                }
            }
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, cv) in m {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)).or(extra) {
                    validate(s, cv, &child(path, k), errs);
                }
            }
        }
        _ => {}
    }
}

/// What the server does with a custom resource before storing it: drop nulls, default,
/// prune (refusing unknown fields when `strict`), validate. `metadata` must be an
/// ObjectMeta (schema.rs checks it).
pub fn admit_custom(obj: &mut Value, schema: &Value, strict: bool) -> Result<(), ApiError> {
    let mut unknown = Vec::new();
    prune(schema, obj, "", &mut unknown);
    if strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        return Err(crate::schema::undecodable(
            obj,
            &format!("strict decoding error: {}", list.join(", ")),
        ));
    }
    default(schema, obj);
    crate::schema::check_meta(obj)?;
    let mut errs = Vec::new();
    validate(schema, obj, "", &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(crate::validation::invalid(obj, &errs))
    }
}

/// Pruned copy (unknown fields dropped), for `fieldValidation=Ignore|Warn`.
pub fn pruned(schema: &Value, obj: &Value) -> Value {
    let mut v = obj.clone();
    prune(schema, &mut v, "", &mut Vec::new());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["addresses"], "properties": {
                "addresses": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[0-9a-f.:/-]+$"}},
                "autoAssign": {"type": "boolean", "default": true},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "free": {"x-kubernetes-int-or-string": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "any": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }},
        }})
    }

    #[test]
    fn prune_default_validate() {
        let mut v = json!({"apiVersion": "x.io/v1", "kind": "P", "metadata": {"name": "p"},
            "spec": {"addresses": ["10.0.0.0/24"], "zzz": 1, "mode": null,
                     "labels": {"a": "b"}, "any": {"q": 1}, "free": "1e30"}});
        let mut unknown = Vec::new();
        prune(&schema(), &mut v, "", &mut unknown);
        assert_eq!(unknown, vec!["spec.zzz".to_string()]);
        assert!(v["spec"].get("mode").is_none(), "non-nullable null dropped");
        assert_eq!(v["spec"]["any"]["q"], 1);
        default(&schema(), &mut v);
        assert_eq!(v["spec"]["autoAssign"], true);
        let mut errs = Vec::new();
        validate(&schema(), &v, "", &mut errs);
        assert_eq!(errs, Vec::<String>::new());

        let bad =
            json!({"spec": {"addresses": ["X"], "autoAssign": "yes", "mode": "c", "free": 1.5}});
        let mut errs = Vec::new();
        validate(&schema(), &bad, "", &mut errs);
        assert_eq!(
            errs,
            vec![
                "spec.addresses[0]: Invalid value: \"X\": spec.addresses[0] in body should match '^[0-9a-f.:/-]+$'",
                "spec.autoAssign: Invalid value: \"string\": spec.autoAssign in body must be of type boolean: \"string\"",
                "spec.free: Invalid value: \"number\": spec.free in body must be of type integer,string: \"number\"",
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
            ]
        );
        let mut errs = Vec::new();
        validate(
            &schema(),
            &json!({"spec": {"addresses": []}}),
            "",
            &mut errs,
        );
        assert_eq!(
            errs,
            vec![
                "spec.addresses: Invalid value: 0: spec.addresses in body should have at least 1 items"
            ]
        );
        let mut errs = Vec::new();
        validate(&schema(), &json!({"spec": {}}), "", &mut errs);
        assert_eq!(errs, vec!["spec.addresses: Required value"]);
    }
}
