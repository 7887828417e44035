//! Small, dependency-free helpers for the deployment checks in `tests/manifests.rs`:
//! locating the repository, splitting multi-document YAML, recognising kube-keepalived-vip
//! ConfigMap values and scanning Helm templates for `.Values` references.

use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(here)
}

/// Splits a YAML stream into its documents at lines that are exactly `---` (trailing
/// whitespace ignored). Documents that hold only comments and blank lines are dropped.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push(current);
    docs.into_iter().filter(|d| has_content(d)).collect()
}

/// Whether a YAML document has anything besides comments and blank lines.
pub fn has_content(doc: &str) -> bool {
    doc.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    })
}

/// RFC 1123 label, as Kubernetes requires for namespace and Service names.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A kube-keepalived-vip ConfigMap value: `""` (VIP only) or
/// `<namespace>/<service>[:NAT|DR|PROXY]`.
pub fn is_vip_target(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let (svc_ref, mode) = match value.split_once(':') {
        Some((r, m)) => (r, Some(m)),
        None => (value, None),
    };
    if let Some(m) = mode
        && !matches!(m, "NAT" | "DR" | "PROXY")
    {
        return false;
    }
    match svc_ref.split_once('/') {
        Some((ns, svc)) => is_dns1123_label(ns) && is_dns1123_label(svc),
        None => false,
    }
}

/// Every `.Values.a.b.c` path in a Helm template, as `["a", "b", "c"]`, in order of
/// appearance (`$.Values…` included).
pub fn values_references(template: &str) -> Vec<Vec<String>> {
    const NEEDLE: &str = ".Values";
    let mut refs = Vec::new();
    let bytes = template.as_bytes();
    let mut from = 0;
    while let Some(pos) = template[from..].find(NEEDLE) {
        let start = from + pos;
        let mut i = start + NEEDLE.len();
        from = i;
        // `.ValuesFoo` is another identifier, not a reference.
        if i < bytes.len() && is_ident_byte(bytes[i]) {
            continue;
        }
        let mut path = Vec::new();
        while i < bytes.len() && bytes[i] == b'.' {
            let seg_start = i + 1;
            let mut j = seg_start;
            while j < bytes.len() && is_ident_byte(bytes[j]) {
                j += 1;
            }
            if j == seg_start {
                break;
            }
            path.push(template[seg_start..j].to_string());
            i = j;
        }
        from = i;
        refs.push(path);
    }
    refs
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_drops_comment_only_ones() {
        let text = "# head\n---\na: 1\n---\n# only a comment\n---   \nb: 2\n";
        assert_eq!(split_documents(text), vec!["a: 1\n", "b: 2\n"]);
        // `---` inside a value or indented is not a separator.
        assert_eq!(split_documents("a: |\n  ---\n").len(), 1);
    }

    #[test]
    fn vip_targets() {
        for ok in [
            "",
            "ingress-nginx/ingress-nginx-controller",
            "default/web:NAT",
            "a/b:DR",
            "a/b:PROXY",
        ] {
            assert!(is_vip_target(ok), "{ok:?}");
        }
        for bad in [
            "web",
            "default/",
            "/web",
            "default/web:nat",
            "default/web:TUN",
            "Default/web",
            "a/b/c",
            "a/b:",
            "-a/b",
        ] {
            assert!(!is_vip_target(bad), "{bad:?}");
        }
    }

    #[test]
    fn finds_values_paths() {
        let t = r#"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- with .Values.nodeSelector }}{{ $.Values.api.port }}{{ .ValuesX }}{{ .Values }}"#;
        let got: Vec<String> = values_references(t).iter().map(|p| p.join(".")).collect();
        assert_eq!(
            got,
            vec![
                "image.repository",
                "image.tag",
                "nodeSelector",
                "api.port",
                ""
            ]
        );
    }
}
