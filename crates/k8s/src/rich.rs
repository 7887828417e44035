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

use serde::Deserialize;

/// The data key that holds the document.
pub const KEY: &str = "edgevip.yaml";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Doc {
    pub spread: bool,
    /// Entries kept as loose values so each one is validated (and rejected) alone.
    pub instances: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    spread: Option<bool>,
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
        instances: raw.instances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_loose_until_validated() {
        let d = parse(
            "spread: true\ninstances:\n  - {name: web, vrid: 51, vips: [192.0.2.1/24, 2001:db8::1/64], advert_interval: 100ms}\n  - {name: bad, vrid: zero}\n",
        )
        .unwrap();
        assert!(d.spread);
        assert_eq!(d.instances.len(), 2);
        assert_eq!(d.instances[0]["vrid"], 51);
        assert_eq!(d.instances[0]["vips"][1], "2001:db8::1/64");
        assert_eq!(d.instances[1]["vrid"], "zero");
    }

    #[test]
    fn a_broken_document_is_an_error() {
        assert!(parse("instances: [").is_err());
        let e = parse("spred: true").unwrap_err();
        assert!(e.contains("spred"), "{e}");
        assert_eq!(parse("").unwrap(), Doc::default());
    }
}
