//! What every verb handler shares: the parsed request (`Ctx`, `Query`), the resolved URL
//! (`Target`), the reply forms and their rendering. Routing (routes.rs) and the verbs
//! (list.rs, watch.rs, write.rs) depend on this module, never on each other.

use crate::rbac::User;
use crate::resources::ResourceInfo;
use crate::selector::{FieldSelector, Filter, LabelSelector};
use crate::status::ApiError;
use crate::store::{self, ObjKey};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, StatusCode, header};
use serde_json::{Value, json};

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// Decoded query pairs. kube-rs sends queries starting with `&`; empty pairs are skipped.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True")
}

/// Query parameters of one request.
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(truthy)
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub fn json_response(status: StatusCode, v: &Value) -> hyper::Response<Body> {
    full(status, "application/json", v.to_string())
}

pub fn error_response(e: &ApiError) -> hyper::Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.to_status())
}

/// What a verb handler produced.
pub enum Reply {
    Json(StatusCode, Value),
    Stream(Body),
}

/// Parsed request context shared by the verb handlers.
pub struct Ctx {
    pub method: Method,
    pub query: Query,
    pub meta_only: bool,
    pub content_type: String,
    pub body: Bytes,
    /// Who sent it (authenticated before routing).
    pub user: User,
}

/// Resolved resource URL.
pub struct Target {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: bool,
}

/// `PartialObjectMetadata` form of an object (Accept `as=PartialObjectMetadata`).
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub fn render(ctx: &Ctx, obj: Value) -> Value {
    if ctx.meta_only { partial(&obj) } else { obj }
}

pub fn filter_for(ctx: &Ctx, t: &Target) -> Result<Filter, ApiError> {
    Ok(Filter {
        ty: (t.info.api_version(), t.info.kind.to_string()),
        namespace: t.namespace.clone(),
        labels: LabelSelector::parse(ctx.query.get("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse_for(
            ctx.query.get("fieldSelector").unwrap_or_default(),
            &t.info.api_version(),
            t.info.kind,
        )?,
    })
}

impl Target {
    pub fn key(&self) -> ObjKey {
        (
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }
    pub fn ty(&self) -> store::TypeKey {
        (self.info.api_version(), self.info.kind.to_string())
    }
    pub fn missing(&self) -> ApiError {
        ApiError::not_found(format!(
            "{} \"{}\" not found",
            plural_group(self.info),
            self.name.as_deref().unwrap_or_default()
        ))
    }
}

/// `configmaps` / `leases.coordination.k8s.io`, as the apiserver names resources in errors.
fn plural_group(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("&watch=true&labelSelector=app%3Dweb%2Cx+in+%28a%29&x");
        assert_eq!(q[0], ("watch".into(), "true".into()));
        assert_eq!(q[1], ("labelSelector".into(), "app=web,x in (a)".into()));
        assert_eq!(q[2], ("x".into(), "".into()));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
