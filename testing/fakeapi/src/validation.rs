//! The apiserver's validation of the kinds edgevip writes or reads, on every write:
//! names, labels, ConfigMap keys, Events (core/v1 and events.k8s.io/v1, create and
//! update), Service load-balancer status and EndpointSlices. Errors are 422 Invalid with
//! the real server's field paths and wording.

use crate::status::ApiError;
use serde_json::Value;
use std::net::IpAddr;

/// `Event.events.k8s.io "x" is invalid: [a: Required value, ...]` (422).
pub fn invalid(obj: &Value, errs: &[String]) -> ApiError {
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let qualified = match av.rsplit_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind.to_string(),
    };
    let list = match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    ApiError::invalid(format!("{qualified} {name:?} is invalid: {list}"))
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn required(errs: &mut Vec<String>, field: &str) {
    errs.push(format!("{field}: Required value"));
}

fn bad(errs: &mut Vec<String>, field: &str, value: &str, why: &str) {
    errs.push(format!("{field}: Invalid value: {value:?}: {why}"));
}

/// RFC 1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, <= 63.
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, <= 253.
fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

/// A label value or the name part of a qualified name: <= 63, [A-Za-z0-9][-A-Za-z0-9_.]*
/// with an alphanumeric at both ends.
fn name_part(s: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !s.is_empty()
        && s.len() <= 63
        && alnum(s.chars().next())
        && alnum(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `prefix/name` or `name`, as label keys and reportingController are.
fn qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => dns_subdomain(prefix) && name_part(name),
        None => name_part(s),
    }
}

fn check_meta(obj: &Value, kind: &str, errs: &mut Vec<String>) {
    let name = str_at(obj, "/metadata/name");
    let (ok, what) = match kind {
        // Services and Namespaces are DNS labels; a Service name must start with a letter.
        "Service" => (
            dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        ),
        "Namespace" => (
            dns_label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ),
        _ => (
            dns_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ),
    };
    if !name.is_empty() && !ok {
        bad(errs, "metadata.name", name, what);
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !qualified_name(k) {
                bad(
                    errs,
                    "metadata.labels",
                    k,
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                );
            }
            let v = v.as_str().unwrap_or_default();
            if !v.is_empty() && !name_part(v) {
                bad(
                    errs,
                    "metadata.labels",
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'",
                );
            }
        }
    }
}

fn check_configmap(obj: &Value, errs: &mut Vec<String>) {
    let data = obj["data"].as_object();
    let binary = obj["binaryData"].as_object();
    for (field, map) in [("data", data), ("binaryData", binary)] {
        for k in map.into_iter().flat_map(|m| m.keys()) {
            let ok = !k.is_empty()
                && k.len() <= 253
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                bad(
                    errs,
                    &format!("{field}[{k}]"),
                    k,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                );
            }
        }
    }
    if let (Some(d), Some(b)) = (data, binary) {
        for k in d.keys().filter(|k| b.contains_key(*k)) {
            bad(
                errs,
                &format!("data[{k}]"),
                k,
                "duplicate of key present in binaryData",
            );
        }
    }
}

/// events.k8s.io/v1 names of the fields the core Event calls otherwise.
struct EventFields {
    involved: &'static str,
    note: &'static str,
    controller: &'static str,
}

const CORE_EVENT: EventFields = EventFields {
    involved: "involvedObject",
    note: "message",
    controller: "reportingComponent",
};
const V1_EVENT: EventFields = EventFields {
    involved: "regarding",
    note: "note",
    controller: "reportingController",
};

/// ValidateEventCreate / ValidateEventUpdate (pkg/apis/core/validation/events.go).
fn check_event(obj: &Value, old: Option<&Value>, strict: bool, errs: &mut Vec<String>) {
    let f = if strict { V1_EVENT } else { CORE_EVENT };
    let ns = str_at(obj, "/metadata/namespace");
    let involved_ns = obj[f.involved]["namespace"].as_str().unwrap_or_default();
    let has_time = obj["eventTime"].as_str().is_some_and(|t| !t.is_empty());
    let involved_path = format!("{}.namespace", f.involved);
    if !has_time {
        // Legacy events: the namespaces must agree.
        let ok = if involved_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == involved_ns
        };
        if !ok {
            bad(
                errs,
                &involved_path,
                involved_ns,
                "does not match event.namespace",
            );
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            bad(
                errs,
                &involved_path,
                involved_ns,
                "does not match event.namespace",
            );
        }
        let controller = obj[f.controller].as_str().unwrap_or_default();
        if controller.is_empty() {
            required(errs, f.controller);
        } else if !qualified_name(controller) {
            bad(errs, f.controller, controller, "must be a qualified name");
        }
        for (field, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let v = obj[field].as_str().unwrap_or_default();
            if v.is_empty() {
                required(errs, field);
            } else if v.len() > limit {
                bad(
                    errs,
                    field,
                    "",
                    &format!("can have at most {limit} characters"),
                );
            }
        }
        if obj[f.note].as_str().unwrap_or_default().len() > 1024 {
            bad(errs, f.note, "", "can have at most 1024 characters");
        }
    }
    if !strict {
        return;
    }
    // events.k8s.io/v1 and newer: strict rules on top of the legacy ones.
    if !has_time {
        required(errs, "eventTime");
    }
    let ty = obj["type"].as_str().unwrap_or_default();
    if ty != "Normal" && ty != "Warning" {
        bad(errs, "type", "", &format!("has invalid value: {ty}"));
    }
    for field in [
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
        "deprecatedSource",
    ] {
        let unset = |v: &Value| {
            v.is_null() || v.as_object().is_some_and(|m| m.is_empty()) || v.as_i64() == Some(0)
        };
        if obj.get(field).is_some_and(|v| !unset(v)) {
            bad(errs, field, "", "needs to be unset");
        }
    }
    let series_changed = old.is_none_or(|o| o.get("series") != obj.get("series"));
    if let Some(series) = obj.get("series").filter(|s| !s.is_null() && series_changed) {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            bad(errs, "series.count", "", "should be at least 2");
        }
        if series["lastObservedTime"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            required(errs, "series.lastObservedTime");
        }
    }
    if let Some(old) = old {
        for field in [
            "regarding",
            "related",
            "reason",
            "note",
            "type",
            "eventTime",
            "action",
            "reportingController",
            "reportingInstance",
        ] {
            if old.get(field) != obj.get(field) {
                bad(errs, field, "", "field is immutable");
            }
        }
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn check_service(obj: &Value, errs: &mut Vec<String>) {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        errs.push(format!(
            "spec.type: Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        ));
    }
    for (i, p) in obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            bad(
                errs,
                &format!("spec.ports[{i}].port"),
                &port.to_string(),
                "must be between 1 and 65535, inclusive",
            );
        }
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        if !matches!(proto, "TCP" | "UDP" | "SCTP") {
            errs.push(format!(
                "spec.ports[{i}].protocol: Unsupported value: {proto:?}"
            ));
        }
    }
    let ingress = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array);
    if ingress.is_some_and(|v| !v.is_empty()) && ty != "LoadBalancer" {
        errs.push(
            "status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"
                .into(),
        );
    }
    for (i, ing) in ingress.into_iter().flatten().enumerate() {
        let path = format!("status.loadBalancer.ingress[{i}]");
        let addr = ing["ip"].as_str().unwrap_or_default();
        if !addr.is_empty() && ip(addr).is_none() {
            bad(
                errs,
                &format!("{path}.ip"),
                addr,
                "must be a valid IP address",
            );
        }
        match ing["ipMode"].as_str() {
            None => {}
            Some(_) if addr.is_empty() => {
                errs.push(format!(
                    "{path}.ipMode: Forbidden: may not be specified when `ip` is not set"
                ));
            }
            Some("VIP" | "Proxy") => {}
            Some(m) => errs.push(format!(
                "{path}.ipMode: Unsupported value: {m:?}: supported values: \"Proxy\", \"VIP\""
            )),
        }
        let host = ing["hostname"].as_str().unwrap_or_default();
        if !host.is_empty() && ip(host).is_some() {
            bad(
                errs,
                &format!("{path}.hostname"),
                host,
                "must be a DNS name, not an IP address",
            );
        }
    }
}

fn check_endpointslice(obj: &Value, errs: &mut Vec<String>) {
    let ty = obj["addressType"].as_str().unwrap_or_default();
    if !matches!(ty, "IPv4" | "IPv6" | "FQDN") {
        errs.push(format!(
            "addressType: Unsupported value: {ty:?}: supported values: \"FQDN\", \"IPv4\", \"IPv6\""
        ));
    }
    for (i, ep) in obj["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let addrs = ep["addresses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if addrs.is_empty() || addrs.len() > 100 {
            bad(
                errs,
                &format!("endpoints[{i}].addresses"),
                "",
                "must have between 1 and 100 addresses",
            );
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or_default();
            let ok = match (ty, ip(a)) {
                ("IPv4", Some(IpAddr::V4(_))) | ("IPv6", Some(IpAddr::V6(_))) => true,
                ("FQDN", _) => dns_subdomain(a),
                _ => false,
            };
            if !ok {
                bad(
                    errs,
                    &format!("endpoints[{i}].addresses[{j}]"),
                    a,
                    &format!("must be a valid {ty} address"),
                );
            }
        }
    }
}

/// Validate `obj` (already decoded) as a create (`old == None`) or an update of `old`.
pub fn check(obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let mut errs = Vec::new();
    check_meta(obj, kind, &mut errs);
    match (av, kind) {
        ("v1", "ConfigMap") => check_configmap(obj, &mut errs),
        ("v1", "Event") => check_event(obj, old, false, &mut errs),
        ("events.k8s.io/v1", "Event") => check_event(obj, old, true, &mut errs),
        ("v1", "Service") => check_service(obj, &mut errs),
        ("discovery.k8s.io/v1", "EndpointSlice") => check_endpointslice(obj, &mut errs),
        _ => {}
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(obj, &errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1_event() -> Value {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "edge-a.1", "namespace": "default"},
            "eventTime": "2026-12-04T10:00:00.000000Z", "type": "Normal", "reason": "Master",
            "action": "Reconcile", "reportingController": "edgevip", "reportingInstance": "edge-a",
            "regarding": {"kind": "Node", "name": "edge-a"}, "note": "x"})
    }

    fn errs(v: &Value, old: Option<&Value>) -> String {
        check(v, old).err().map(|e| e.message).unwrap_or_default()
    }

    #[test]
    fn events_k8s_io_v1() {
        let ev = v1_event();
        assert_eq!(check(&ev, None), Ok(()));
        let mut e = ev.clone();
        for f in ["reportingInstance", "action", "reason"] {
            e.as_object_mut().unwrap().remove(f);
        }
        e["type"] = json!("Info");
        assert_eq!(
            errs(&e, None),
            "Event.events.k8s.io \"edge-a.1\" is invalid: [reportingInstance: Required value, \
             action: Required value, reason: Required value, \
             type: Invalid value: \"\": has invalid value: Info]"
        );
        let mut e = ev.clone();
        e.as_object_mut().unwrap().remove("eventTime");
        assert_eq!(
            errs(&e, None),
            "Event.events.k8s.io \"edge-a.1\" is invalid: eventTime: Required value"
        );
        // A Node event (no namespace on the object) lives in "default" or "kube-system".
        let mut e = ev.clone();
        e["metadata"]["namespace"] = json!("edgevip");
        assert!(errs(&e, None).contains("regarding.namespace: Invalid value"));
        // Updates: a series may be added, the note may not change.
        let mut upd = ev.clone();
        upd["series"] = json!({"count": 2, "lastObservedTime": "2026-12-04T10:00:01.000000Z"});
        assert_eq!(check(&upd, Some(&ev)), Ok(()));
        upd["series"]["count"] = json!(1);
        assert!(errs(&upd, Some(&ev)).contains("series.count"));
        let mut upd = ev.clone();
        upd["note"] = json!("other");
        assert!(errs(&upd, Some(&ev)).contains("note: Invalid value: \"\": field is immutable"));
    }

    #[test]
    fn core_event_namespaces() {
        let e = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "a"},
            "involvedObject": {"kind": "ConfigMap", "namespace": "b", "name": "c"}});
        assert!(errs(&e, None).contains("involvedObject.namespace"));
    }

    #[test]
    fn names_labels_and_keys() {
        let cm = |name: &str, key: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name,
                "labels": {"app.kubernetes.io/name": "x"}}, "data": {key: ""}})
        };
        assert_eq!(check(&cm("vips", "192.0.2.1"), None), Ok(()));
        assert!(errs(&cm("Vips", "k"), None).contains("metadata.name"));
        assert!(errs(&cm("vips", "2001:db8::1"), None).contains("data[2001:db8::1]"));
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"}});
        assert!(errs(&svc, None).contains("DNS-1035"));
    }

    #[test]
    fn service_status_and_slices() {
        let svc = |ty: &str, ing: Value| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"type": ty, "ports": [{"port": 80}]}, "status": {"loadBalancer": {"ingress": ing}}})
        };
        assert_eq!(
            check(
                &svc(
                    "LoadBalancer",
                    json!([{"ip": "192.0.2.1", "ipMode": "VIP"}])
                ),
                None
            ),
            Ok(())
        );
        assert!(errs(&svc("ClusterIP", json!([{"ip": "192.0.2.1"}])), None).contains("Forbidden"));
        assert!(
            errs(&svc("LoadBalancer", json!([{"ip": "192.0.2"}])), None).contains("ip: Invalid")
        );
        assert!(
            errs(&svc("LoadBalancer", json!([{"ipMode": "VIP"}])), None)
                .contains("ipMode: Forbidden")
        );
        let slice = |ty: &str, a: &str| {
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"},
                "addressType": ty, "endpoints": [{"addresses": [a]}]})
        };
        assert_eq!(check(&slice("IPv4", "198.51.100.1"), None), Ok(()));
        assert!(errs(&slice("IPv6", "198.51.100.1"), None).contains("endpoints[0].addresses[0]"));
    }
}
