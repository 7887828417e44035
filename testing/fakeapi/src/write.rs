//! Write verbs: create (POST), replace (PUT), patch (PATCH), delete (DELETE, also on
//! collections), with the `/status` subresource rules. Every object written is admitted by
//! the store (strict decoding, validation); `fieldValidation=Ignore|Warn` drops unknown
//! fields first instead (the fake's default is Strict: edgevip must never send one).

use crate::api::FakeApi;
use crate::request::{Ctx, Reply, Target, filter_for, render};
use crate::status::ApiError;
use crate::store::{self, ObjKey};
use crate::{crd, patch, schema};
use hyper::StatusCode;
use serde_json::{Value, json};

/// The object as written: unknown fields dropped when the request asked for that (for a
/// custom resource, pruned by its CRD's schema).
fn field_validation(custom: Option<&Value>, ctx: &Ctx, obj: Value) -> Result<Value, ApiError> {
    match ctx.query.get("fieldValidation") {
        None | Some("" | "Strict") => Ok(obj),
        Some("Ignore" | "Warn") => match custom {
            Some(s) => Ok(crd::pruned(s, &obj)),
            None => schema::decode(&obj),
        },
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not {other:?}"
        ))),
    }
}

/// The CRD schema of the target's type, for a custom resource (taken before any
/// `mutate`, which holds the lock).
fn custom_schema(api: &FakeApi, t: &Target) -> Option<Value> {
    api.lock()
        .store
        .custom_schema(&t.info.api_version(), t.info.kind)
        .cloned()
}

fn body_json(ctx: &Ctx) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    Ok(v)
}

/// Fill in / check apiVersion, kind, namespace and (if the URL has one) name of a body.
fn conform(mut obj: Value, t: &Target) -> Result<Value, ApiError> {
    for (field, want) in [
        ("apiVersion", t.info.api_version()),
        ("kind", t.info.kind.to_string()),
    ] {
        match obj.get(field).and_then(Value::as_str) {
            None | Some("") => obj[field] = json!(want),
            Some(v) if v == want => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "{field} {v:?} does not match the request ({want:?})"
                )));
            }
        }
    }
    let meta = store::meta_mut(&mut obj);
    let body_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match &t.namespace {
        Some(ns) if !body_ns.is_empty() && body_ns != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Some(ns) => {
            meta.insert("namespace".into(), json!(ns));
        }
        None => {
            meta.remove("namespace");
        }
    }
    if let Some(name) = &t.name {
        match meta.get("name").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("name".into(), json!(name));
            }
            Some(n) if n == name => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
        }
    }
    Ok(obj)
}

pub fn create(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Value, ApiError> {
    if t.status || (t.info.namespaced && t.namespace.is_none()) {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "create needs a namespaced collection URL",
        ));
    }
    let mut obj = conform(body_json(ctx)?, t)?;
    let meta = store::meta_mut(&mut obj);
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                "metadata.name or metadata.generateName is required",
            ));
        }
        // Derived from the next resourceVersion: unique without randomness.
        let suffix = api.resource_version() + 1;
        let name = format!("{prefix}{suffix:05x}");
        meta.insert("name".into(), json!(name));
    }
    let custom = custom_schema(api, t);
    let mut obj = field_validation(custom.as_ref(), ctx, obj)?;
    // A custom resource with the status subresource starts without status (the CRD
    // strategy's PrepareForCreate); built-in kinds keep the fake's old behaviour.
    if t.info.status_subresource && custom.is_some() {
        if let Value::Object(m) = &mut obj {
            m.remove("status");
        }
    }
    let created = api.mutate(|s| s.create(obj))?;
    Ok(render(ctx, created))
}

/// Merge a full new object with the stored one according to the subresource rules.
fn apply_subresource(t: &Target, current: &Value, mut new: Value) -> Value {
    if t.status {
        // `/status` writes only change status (metadata.resourceVersion still checked).
        let mut out = current.clone();
        out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
            store::meta_mut(&mut out).insert("resourceVersion".into(), rv);
        }
        out
    } else {
        if t.info.status_subresource {
            match current.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Value::Object(m) = &mut new {
                        m.remove("status");
                    }
                }
            }
        }
        new
    }
}

pub fn replace(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Value, ApiError> {
    let custom = custom_schema(api, t);
    let obj = field_validation(custom.as_ref(), ctx, conform(body_json(ctx)?, t)?)?;
    let updated = api.mutate(|s| {
        let current = s
            .get(&t.ty(), &t.key())
            .cloned()
            .ok_or_else(|| t.missing())?;
        s.update(apply_subresource(t, &current, obj))
    })?;
    Ok(render(ctx, updated))
}

/// JSON merge patch and JSON patch, the types edgevip (and kube's event Recorder) send.
/// Strategic merge and server-side apply need per-field schema knowledge (list merge keys,
/// field managers and their conflicts) that this fake does not have: rather than apply them
/// as plain merges and pass tests a real server would fail, they get 415.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
];

pub fn patch(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Reply, ApiError> {
    let ct = ctx
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !PATCH_TYPES.contains(&ct.as_str()) {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {} \
                 (the fake API server implements neither strategic merge nor server-side apply; got {ct:?})",
                PATCH_TYPES.join(", ")
            ),
        ));
    }
    let body: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| ApiError::bad_request(format!("the patch body is not valid JSON: {e}")))?;
    let custom = custom_schema(api, t);
    let obj = api.mutate(|s| -> Result<_, ApiError> {
        let current = s
            .get(&t.ty(), &t.key())
            .cloned()
            .ok_or_else(|| t.missing())?;
        let mut patched = current.clone();
        match ct.as_str() {
            "application/merge-patch+json" => patch::merge_patch(&mut patched, &body),
            _ => patch::json_patch(&mut patched, &body)?,
        }
        // Identity is not patchable.
        for (field, v) in [
            ("apiVersion", &current["apiVersion"]),
            ("kind", &current["kind"]),
        ] {
            patched[field] = v.clone();
        }
        let meta = store::meta_mut(&mut patched);
        for field in ["name", "namespace", "uid", "creationTimestamp"] {
            match current.pointer(&format!("/metadata/{field}")) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        let patched = field_validation(custom.as_ref(), ctx, patched)?;
        s.update(apply_subresource(t, &current, patched))
    })?;
    Ok(Reply::Json(StatusCode::OK, render(ctx, obj)))
}

pub fn delete(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Value, ApiError> {
    if t.status {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "cannot delete a status subresource",
        ));
    }
    let gone = api
        .mutate(|s| s.delete(t.ty(), t.key()))
        .ok_or_else(|| t.missing())?;
    Ok(render(ctx, gone))
}

pub fn delete_collection(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Value, ApiError> {
    let filter = filter_for(ctx, t)?;
    let items = api.mutate(|s| {
        let keys: Vec<ObjKey> = s
            .objects(&filter.ty)
            .filter(|o| filter.matches(o))
            .map(store::key_of)
            .collect();
        keys.into_iter()
            .filter_map(|k| s.delete(filter.ty.clone(), k))
            .map(|o| render(ctx, o))
            .collect::<Vec<_>>()
    });
    Ok(json!({
        "kind": format!("{}List", t.info.kind), "apiVersion": t.info.api_version(),
        "metadata": {"resourceVersion": api.resource_version().to_string()}, "items": items,
    }))
}
