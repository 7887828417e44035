//! What happens to every object written, through the API or by a test's `apply`, before
//! it is stored: strict decoding (schema.rs), validation (validation.rs), and what the
//! cluster's controllers would add (a Node without a Ready condition shows Ready=Unknown,
//! as the node lifecycle controller marks a node whose kubelet never posted status).

use crate::status::ApiError;
use crate::{crd, schema, validation};
use serde_json::{Value, json};

/// Check `obj` as a create (`old == None`) or an update of `old`; adds the Node condition.
/// `custom` is the schema of a custom resource (its CRD's openAPIV3Schema): the object is
/// pruned, defaulted and validated against it instead of a k8s-openapi type.
pub fn admit(obj: &mut Value, old: Option<&Value>, custom: Option<&Value>) -> Result<(), ApiError> {
    match custom {
        Some(s) => crd::admit_custom(obj, s, true)?,
        None => schema::check(obj)?,
    }
    validation::check(obj, old)?;
    if crd::is_crd(
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
    ) {
        crd::admit_definition(obj)?;
    }
    if obj["apiVersion"] == "v1" && obj["kind"] == "Node" {
        mark_unready_without_status(obj);
    }
    if obj["apiVersion"] == "v1" && obj["kind"] == "Secret" {
        merge_string_data(obj);
    }
    Ok(())
}

/// A Secret's `stringData` is write-only: the API server merges it into `data` (base64,
/// winning over a `data` key of the same name) and never stores or returns it.
fn merge_string_data(secret: &mut Value) {
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    let data = secret
        .as_object_mut()
        .expect("an object")
        .entry("data")
        .or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in strings {
        let bytes = v.as_str().unwrap_or_default().as_bytes().to_vec();
        let encoded = serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or_default();
        data[k.as_str()] = encoded;
    }
}

fn mark_unready_without_status(node: &mut Value) {
    let has_ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready"));
    if has_ready {
        return;
    }
    let unknown = json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
        "message": "Kubelet never posted node status."});
    if !node["status"].is_object() {
        node["status"] = json!({});
    }
    match node["status"]["conditions"].as_array_mut() {
        Some(c) => c.push(unknown),
        None => node["status"]["conditions"] = json!([unknown]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_without_ready_is_unknown() {
        let mut n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        admit(&mut n, None, None).expect("valid");
        assert_eq!(n["status"]["conditions"][0]["status"], "Unknown");
        let mut ready = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let before = ready.clone();
        admit(&mut ready, None, None).expect("valid");
        assert_eq!(ready, before);
    }

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns"},
            "data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "pw", "c": "hi"}});
        admit(&mut s, None, None).expect("valid");
        assert_eq!(s["data"], json!({"a": "eA==", "b": "cHc=", "c": "aGk="}));
        assert!(s.get("stringData").is_none());
    }
}
