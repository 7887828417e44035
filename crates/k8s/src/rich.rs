//! edgevip's own ConfigMap format: YAML under one data key, lifting the compat format's
//! limits (IPv6, several VIPs and VRIDs, per-instance interface, checks, preempt, unicast).
//!
//! ```yaml
//! spread: true          # rotate priorities per instance: each node masters a share
//! instances:            # each entry is an instance of the config file's schema; priority,
//!   - name: web         # unicast_peers and interface default to what the cluster says
//!     vrid: 51
//!     vips: [192.0.2.100/24, 2001:db8::100/64]
//! ```

use edgevip_config::raw;
use serde::Deserialize;

/// The data key that holds the document.
pub const KEY: &str = "edgevip.yaml";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Doc {
    pub spread: bool,
    /// Each entry read on its own, so one that does not even fit the schema is rejected
    /// alone (and can fall back on its last good form, found by name).
    pub instances: Vec<Entry>,
}

/// One entry of `instances`: the file's loose schema, or why it does not fit it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: Option<String>,
    pub fields: Result<raw::Instance, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    spread: Option<bool>,
    /// Any YAML value, so that a bad entry spoils only itself.
    #[serde(default)]
    instances: Vec<serde_json::Value>,
}

pub fn parse(text: &str) -> Result<Doc, String> {
    if text.trim().is_empty() {
        return Ok(Doc::default());
    }
    let raw: RawDoc = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    Ok(Doc {
        spread: raw.spread.unwrap_or(false),
        instances: raw.instances.into_iter().map(entry).collect(),
    })
}

fn entry(v: serde_json::Value) -> Entry {
    let name = v.get("name").and_then(|n| n.as_str()).map(str::to_string);
    let fields = if v.is_object() {
        serde_json::from_value(v).map_err(|e| e.to_string())
    } else {
        Err("is not a mapping".into())
    };
    Entry { name, fields }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_is_read_alone() {
        let d = parse(
            "spread: true\ninstances:\n  - {name: web, vrid: 51, vips: [192.0.2.1/24, 2001:db8::1/64], advert_interval: 100ms}\n  - {name: bad, vrid: zero}\n  - [not, a, mapping]\n",
        )
        .unwrap();
        assert!(d.spread);
        assert_eq!(d.instances.len(), 3);
        let web = d.instances[0].fields.as_ref().unwrap();
        assert_eq!(web.vrid, Some(51));
        assert_eq!(web.vips[1], "2001:db8::1/64");
        assert_eq!(web.advert_interval.as_deref(), Some("100ms"));
        assert_eq!(d.instances[1].name.as_deref(), Some("bad"));
        let e = d.instances[1].fields.as_ref().unwrap_err();
        assert!(e.contains("\"zero\""), "{e}");
        assert_eq!(
            d.instances[2],
            Entry {
                name: None,
                fields: Err("is not a mapping".into())
            }
        );
    }

    #[test]
    fn a_broken_document_is_an_error() {
        assert!(parse("instances: [").is_err());
        let e = parse("spred: true").unwrap_err();
        assert!(e.contains("spred"), "{e}");
        assert_eq!(parse("").unwrap(), Doc::default());
    }
}
