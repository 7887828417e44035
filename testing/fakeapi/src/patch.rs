//! PATCH bodies: JSON merge patch (RFC 7386, also used for strategic-merge and
//! server-side-apply bodies) and JSON patch (RFC 6902).

use crate::status::ApiError;
use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// RFC 6901 pointer -> unescaped tokens.
fn tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::invalid(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'a>(doc: &'a mut Value, toks: &[String]) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| ApiError::invalid(format!("path element {t:?} not found")))?;
    }
    Ok(cur)
}

fn split_last(path: &str) -> Result<(Vec<String>, String), ApiError> {
    let mut toks = tokens(path)?;
    let last = toks
        .pop()
        .ok_or_else(|| ApiError::invalid("cannot operate on the document root"))?;
    Ok((toks, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (toks, last) = split_last(path)?;
    match parent_mut(doc, &toks)? {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| ApiError::invalid(format!("bad array index {last:?}")))?
            };
            a.insert(idx, value);
        }
        _ => return Err(ApiError::invalid(format!("cannot add at {path:?}"))),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (toks, last) = split_last(path)?;
    let missing = || ApiError::invalid(format!("path {path:?} does not exist"));
    match parent_mut(doc, &toks)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

fn get<'a>(doc: &'a mut Value, path: &str) -> Result<&'a mut Value, ApiError> {
    parent_mut(doc, &tokens(path)?)
}

/// RFC 6902: add, remove, replace, test, move, copy. Atomic: on error `doc` is unchanged.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be an array"))?;
    let mut work = doc.clone();
    for op in ops {
        let field = |name: &str| {
            op.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request(format!("json patch op missing {name:?}")))
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request("json patch op missing \"value\""))
        };
        let path = field("path")?;
        match field("op")? {
            "add" => add(&mut work, path, value()?)?,
            "remove" => {
                remove(&mut work, path)?;
            }
            "replace" => *get(&mut work, path)? = value()?,
            "test" => {
                if *get(&mut work, path)? != value()? {
                    return Err(ApiError::invalid(format!("test failed at {path:?}")));
                }
            }
            "move" => {
                let v = remove(&mut work, field("from")?)?;
                add(&mut work, path, v)?;
            }
            "copy" => {
                let v = get(&mut work, field("from")?)?.clone();
                add(&mut work, path, v)?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unsupported json patch op {other:?}"
                )));
            }
        }
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_ops() {
        let mut t = json!({"metadata": {"labels": {"a/b": "1"}}, "l": [1, 2]});
        json_patch(
            &mut t,
            &json!([
                {"op": "add", "path": "/metadata/labels/x", "value": "y"},
                {"op": "remove", "path": "/metadata/labels/a~1b"},
                {"op": "replace", "path": "/l/0", "value": 9},
                {"op": "add", "path": "/l/-", "value": 3},
                {"op": "test", "path": "/l/1", "value": 2},
                {"op": "copy", "from": "/l", "path": "/m"},
            ]),
        )
        .expect("patch");
        assert_eq!(
            t,
            json!({"metadata": {"labels": {"x": "y"}}, "l": [9, 2, 3], "m": [9, 2, 3]})
        );
        let before = t.clone();
        let err = json_patch(
            &mut t,
            &json!([{"op": "remove", "path": "/l/0"}, {"op": "remove", "path": "/nope"}]),
        );
        assert!(err.is_err());
        assert_eq!(t, before, "failed patch must not apply partially");
    }
}
