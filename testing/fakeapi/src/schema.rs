//! Strict decoding of every object written: it must decode into the k8s-openapi type of
//! its kind (required fields present, every value of the right type), and every field it
//! carries must come back from a decode/encode round trip. serde ignores unknown fields,
//! so the round trip is what finds them, as the apiserver's strict field validation does.

use crate::status::ApiError;
use k8s_openapi::api::{apps, coordination, core, discovery, events, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, serde_json::Error> {
    let typed: T = serde_json::from_value(obj.clone())?;
    serde_json::to_value(typed)
}

/// The round trip through the type of (apiVersion, kind); `None` for a kind without one.
fn through_type(
    api_version: &str,
    kind: &str,
    obj: &Value,
) -> Option<Result<Value, serde_json::Error>> {
    Some(match (api_version, kind) {
        ("v1", "Node") => roundtrip::<core::v1::Node>(obj),
        ("v1", "Namespace") => roundtrip::<core::v1::Namespace>(obj),
        ("v1", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(obj),
        ("v1", "Secret") => roundtrip::<core::v1::Secret>(obj),
        ("v1", "Service") => roundtrip::<core::v1::Service>(obj),
        ("v1", "Endpoints") => roundtrip::<core::v1::Endpoints>(obj),
        ("v1", "Pod") => roundtrip::<core::v1::Pod>(obj),
        ("v1", "Event") => roundtrip::<core::v1::Event>(obj),
        ("v1", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(obj),
        ("discovery.k8s.io/v1", "EndpointSlice") => roundtrip::<discovery::v1::EndpointSlice>(obj),
        ("events.k8s.io/v1", "Event") => roundtrip::<events::v1::Event>(obj),
        ("coordination.k8s.io/v1", "Lease") => roundtrip::<coordination::v1::Lease>(obj),
        ("apps/v1", "Deployment") => roundtrip::<apps::v1::Deployment>(obj),
        ("apps/v1", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(obj),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(obj),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            roundtrip::<CustomResourceDefinition>(obj)
        }
        _ => return None,
    })
}

/// Fields present (and not null) in `sent` but missing from `back`, as dotted paths.
fn unknown_fields(sent: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, back) {
        (Value::Object(s), Value::Object(b)) => {
            for (k, v) in s.iter().filter(|(_, v)| !v.is_null()) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None => out.push(p),
                    Some(bv) => unknown_fields(v, bv, &p, out),
                }
            }
        }
        (Value::Array(s), Value::Array(b)) => {
            for (i, (v, bv)) in s.iter().zip(b).enumerate() {
                unknown_fields(v, bv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn type_of(obj: &Value) -> (&str, &str) {
    (
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
    )
}

/// `ConfigMap in version "v1" cannot be handled as a ConfigMap: ...` (400), as the
/// apiserver answers a body it cannot decode.
pub(crate) fn undecodable(obj: &Value, why: &str) -> ApiError {
    let (av, kind) = type_of(obj);
    let version = av.rsplit('/').next().unwrap_or(av);
    ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: {why}"
    ))
}

/// The object as the server keeps it: decoded and re-encoded (unknown fields dropped).
/// Errors are those of [`check`] except for unknown fields. Like Go's decoder, k8s-openapi
/// fills a missing required field with its zero value: validation.rs says what is required.
pub fn decode(obj: &Value) -> Result<Value, ApiError> {
    let (av, kind) = type_of(obj);
    match through_type(av, kind, obj) {
        None => Ok(obj.clone()),
        Some(Ok(back)) => Ok(back),
        Some(Err(e)) => Err(undecodable(obj, &e.to_string())),
    }
}

/// `metadata` of an object without a k8s-openapi type (a custom resource): it must be an
/// ObjectMeta, with no field ObjectMeta does not have.
pub fn check_meta(obj: &Value) -> Result<(), ApiError> {
    let meta = obj.get("metadata").cloned().unwrap_or(Value::Null);
    let back = roundtrip::<ObjectMeta>(&meta).map_err(|e| undecodable(obj, &e.to_string()))?;
    let mut unknown = Vec::new();
    unknown_fields(&meta, &back, "metadata", &mut unknown);
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    Err(undecodable(
        obj,
        &format!("strict decoding error: {}", list.join(", ")),
    ))
}

/// Strict field validation: decodes, and refuses any field the type does not have.
pub fn check(obj: &Value) -> Result<(), ApiError> {
    let back = decode(obj)?;
    let mut unknown = Vec::new();
    unknown_fields(obj, &back, "", &mut unknown);
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    Err(undecodable(
        obj,
        &format!("strict decoding error: {}", list.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(extra: Value) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "labels": {}}, "data": {"k": "v"}});
        crate::patch::merge_patch(&mut v, &extra);
        v
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        assert_eq!(check(&cm(json!({}))), Ok(()));
        let e = check(&cm(json!({"spec": {"x": 1}, "metadata": {"nmae": "b"}}))).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding \
             error: unknown field \"metadata.nmae\", unknown field \"spec\""
        );
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}, {"port": 81, "prot": "TCP"}]}});
        assert!(
            check(&svc)
                .unwrap_err()
                .message
                .ends_with("unknown field \"spec.ports[1].prot\"")
        );
        // null is "not set", never unknown.
        assert_eq!(check(&cm(json!({"binaryData": null}))), Ok(()));
    }

    #[test]
    fn types() {
        let bad = cm(json!({"data": {"k": 1}}));
        assert_eq!(check(&bad).unwrap_err().code, 400);
        // Kinds without a type pass as they are.
        assert_eq!(
            decode(&json!({"apiVersion": "x/v1", "kind": "Y", "z": 1})),
            Ok(json!({"apiVersion": "x/v1", "kind": "Y", "z": 1}))
        );
    }
}
