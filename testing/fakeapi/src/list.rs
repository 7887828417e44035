//! LIST: selectors, resourceVersion semantics and limit/continue pagination over a
//! consistent snapshot.

use crate::api::FakeApi;
use crate::request::{Ctx, Target, filter_for, render};
use crate::status::ApiError;
use crate::store::ObjKey;
use serde_json::{Value, json};

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version {s:?}")))
}

/// Opaque continue token: hex of `[snapshot rv, last namespace, last name]`.
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    json!([rv, key.0, key.1])
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(tok: &str) -> Result<(u64, ObjKey), ApiError> {
    let bad = || ApiError::bad_request("invalid continue token");
    if tok.len() % 2 != 0 || !tok.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..tok.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&tok[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let (rv, ns, name): (u64, String, String) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((rv, (ns, name)))
}

pub fn list(api: &FakeApi, ctx: &Ctx, t: &Target) -> Result<Value, ApiError> {
    let filter = filter_for(ctx, t)?;
    let q = &ctx.query;
    let limit = match q.get("limit").filter(|s| !s.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let st = api.lock();
    let current = st.store.rv();
    let (snap_rv, after) = if let Some(tok) = q.get("continue").filter(|s| !s.is_empty()) {
        let (rv, key) = decode_continue(tok)?;
        if rv < st.store.compacted() {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            ));
        }
        (rv, Some(key))
    } else {
        let rv = q.get("resourceVersion").filter(|s| !s.is_empty());
        let rv = rv.map(parse_rv).transpose()?;
        match (q.get("resourceVersionMatch"), rv) {
            (Some("Exact"), None) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch=Exact needs resourceVersion",
                ));
            }
            (Some("Exact"), Some(r)) if r < st.store.compacted() => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {r} ({})",
                    st.store.compacted()
                )));
            }
            (_, Some(r)) if r > current => {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {r}, current: {current}"),
                ));
            }
            (Some("Exact"), Some(r)) => (r, None),
            (Some("NotOlderThan") | Some("") | None, _) => (current, None),
            (Some(other), _) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported resourceVersionMatch {other:?}"
                )));
            }
        }
    };
    let snapshot = st.store.snapshot(&filter.ty, snap_rv);
    drop(st);
    let mut matching = snapshot
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .filter(|(_, o)| filter.matches(o));
    let mut items = Vec::new();
    let mut last = None;
    for (k, o) in matching.by_ref() {
        items.push(render(ctx, o));
        last = Some(k);
        if limit > 0 && items.len() == limit {
            break;
        }
    }
    let remaining = matching.count();
    let mut meta = json!({"resourceVersion": snap_rv.to_string()});
    if let (true, Some(last)) = (remaining > 0, last) {
        meta["continue"] = json!(encode_continue(snap_rv, &last));
        meta["remainingItemCount"] = json!(remaining);
    }
    let (kind, api_version) = if ctx.meta_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (format!("{}List", t.info.kind), t.info.api_version())
    };
    Ok(json!({"kind": kind, "apiVersion": api_version, "metadata": meta, "items": items}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_roundtrip() {
        let key = ("ns".to_string(), "a\"b".to_string());
        let tok = encode_continue(7, &key);
        assert_eq!(decode_continue(&tok).expect("decode"), (7, key));
        assert!(decode_continue("zz").is_err());
        assert!(decode_continue("abc").is_err());
    }
}
