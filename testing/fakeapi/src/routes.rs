//! URL routing to the verb handlers (list.rs, write.rs, watch.rs), GET of single objects,
//! discovery and `/version`.

use crate::api::FakeApi;
use crate::rbac::{Attributes, Rbac, User};
use crate::request::{Body, Ctx, Query, Reply, Target, json_response, parse_query, render};
use crate::resources::ResourceInfo;
use crate::status::ApiError;
use crate::{list, watch, write};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode, header};
use serde_json::{Value, json};

const META_AS: &str = "as=PartialObjectMetadata";

/// Bearer token -> user, as the token authenticator does: no `Authorization` header is the
/// anonymous user, an unknown token is 401.
pub fn authenticate(api: &FakeApi, headers: &header::HeaderMap) -> Result<User, ApiError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(User::anonymous());
    };
    let token = v
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    token
        .and_then(|t| api.lock().tokens.get(t).cloned())
        .ok_or_else(|| ApiError::new(401, "Unauthorized", "Unauthorized"))
}

pub async fn route(
    api: &FakeApi,
    req: hyper::Request<Incoming>,
    user: Result<User, ApiError>,
) -> Result<hyper::Response<Body>, ApiError> {
    let user = user?;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?
        .to_bytes();
    let header_str = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let ctx = Ctx {
        method: parts.method.clone(),
        query: Query(parse_query(parts.uri.query().unwrap_or_default())),
        meta_only: header_str(header::ACCEPT).contains(META_AS),
        content_type: header_str(header::CONTENT_TYPE),
        body,
        user,
    };
    let segs: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    Ok(match dispatch(api, &ctx, &segs)? {
        Reply::Json(code, v) => json_response(code, &v),
        Reply::Stream(body) => {
            let mut resp = hyper::Response::new(body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp
        }
    })
}

fn not_found_path() -> ApiError {
    ApiError::not_found("the server could not find the requested resource")
}

fn dispatch(api: &FakeApi, ctx: &Ctx, segs: &[&str]) -> Result<Reply, ApiError> {
    let ok = |v: Value| Ok(Reply::Json(StatusCode::OK, v));
    // Non-resource URLs: health and version for everyone (system:public-info-viewer),
    // discovery only for authenticated users (system:discovery).
    let discovery = matches!(
        segs,
        ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _]
    );
    if discovery && ctx.user == User::anonymous() {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User \"system:anonymous\" cannot get path \"/{}\"",
                segs.join("/")
            ),
        ));
    }
    let (group, version, rest) = match segs {
        ["healthz" | "readyz" | "livez"] => return ok(json!("ok")),
        ["version"] => return ok(version_info()),
        ["api"] => {
            return ok(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}));
        }
        ["apis"] => return ok(group_list(&api.lock().store.resources())),
        ["api", "v1"] => return ok(resource_list(&api.lock().store.resources(), "", "v1")),
        ["apis", g, v] => {
            let all = api.lock().store.resources();
            if !all.iter().any(|r| r.group == *g && r.version == *v) {
                return Err(not_found_path());
            }
            return ok(resource_list(&all, g, v));
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    // `/namespaces/{ns}/{plural}...` is namespaced, but `/namespaces/{name}[/status]` is the
    // Namespace object itself.
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" && *plural != "finalize" => {
            (Some(ns.to_string()), {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(*s)),
        _ => return Err(not_found_path()),
    };
    let info = api
        .lock()
        .store
        .resource_by_plural(group, version, plural)
        .ok_or_else(not_found_path)?;
    let scope_ok = match (&namespace, &name) {
        (Some(_), _) => info.namespaced,
        (None, Some(_)) => !info.namespaced,
        (None, None) => true,
    };
    let sub_ok = match sub {
        None => true,
        // The CRD's own subresource list decides; built-in kinds keep the fake's old rule.
        Some("status") => info.status_subresource || !is_custom(api, info),
        Some(_) => false,
    };
    if !scope_ok || !sub_ok {
        return Err(not_found_path());
    }
    if ctx.query.get("dryRun").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the fake apiserver",
        ));
    }
    let t = Target {
        info,
        namespace,
        name,
        status: sub.is_some(),
    };
    authorize(api, ctx, &t)?;
    let method = ctx.method.clone();
    match (method, t.name.is_some()) {
        (Method::GET, false) if ctx.query.flag("watch") => {
            watch::start(api, ctx, &t).map(Reply::Stream)
        }
        (Method::GET, false) => list::list(api, ctx, &t).map(|v| Reply::Json(StatusCode::OK, v)),
        (Method::GET, true) => get(api, ctx, &t).map(|v| Reply::Json(StatusCode::OK, v)),
        (Method::POST, false) => {
            write::create(api, ctx, &t).map(|v| Reply::Json(StatusCode::CREATED, v))
        }
        (Method::PUT, true) => write::replace(api, ctx, &t).map(|v| Reply::Json(StatusCode::OK, v)),
        (Method::PATCH, true) => write::patch(api, ctx, &t),
        (Method::DELETE, true) => {
            write::delete(api, ctx, &t).map(|v| Reply::Json(StatusCode::OK, v))
        }
        (Method::DELETE, false) => {
            write::delete_collection(api, ctx, &t).map(|v| Reply::Json(StatusCode::OK, v))
        }
        (m, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource: {m}"),
        )),
    }
}

/// The RBAC verb of a request, as the apiserver's request-info resolver names it.
fn verb(ctx: &Ctx, t: &Target) -> Option<&'static str> {
    Some(match (&ctx.method, t.name.is_some()) {
        (&Method::GET, false) if ctx.query.flag("watch") => "watch",
        (&Method::GET, true) if ctx.query.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return None,
    })
}

/// 403 unless the policy grants the request (before any handler sees it, as in the
/// apiserver's filter chain: a refused request changes nothing and reveals nothing).
fn authorize(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<(), ApiError> {
    let Some(verb) = verb(ctx, t) else {
        return Ok(()); // 405 from the dispatcher
    };
    let a = Attributes {
        verb,
        group: t.info.group.to_string(),
        resource: t.info.plural.to_string(),
        subresource: t.status.then(|| "status".to_string()),
        // A Namespace object's own namespace is its name.
        namespace: match (&t.namespace, t.info.kind) {
            (None, "Namespace") => t.name.clone(),
            (ns, _) => ns.clone(),
        },
        name: t.name.clone(),
    };
    if api.lock().rbac.allows(&ctx.user, &a) {
        Ok(())
    } else {
        Err(Rbac::forbidden(&ctx.user, &a))
    }
}

fn version_info() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-fakeapi",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn is_custom(api: &FakeApi, info: &ResourceInfo) -> bool {
    !crate::resources::RESOURCES.contains(info)
        && api
            .lock()
            .store
            .custom_schema(&info.api_version(), info.kind)
            .is_some()
}

fn group_list(all: &[&'static ResourceInfo]) -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for r in all.iter().filter(|r| !r.group.is_empty()) {
        if groups.iter().any(|g| g["name"] == r.group) {
            continue;
        }
        let gv = json!({"groupVersion": r.api_version(), "version": r.version});
        groups.push(json!({"name": r.group, "versions": [gv], "preferredVersion": gv}));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(all: &[&'static ResourceInfo], group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in all
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }));
        if r.status_subresource {
            resources.push(
                json!({"name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn get(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Value, ApiError> {
    let obj = api.lock().store.get(&t.ty(), &t.key()).cloned();
    obj.map(|o| render(ctx, o)).ok_or_else(|| t.missing())
}
