//! Small, dependency-free helpers for the deployment checks in `tests/manifests.rs`:
//! locating the repository, splitting multi-document YAML, recognising kube-keepalived-vip
//! ConfigMap values, scanning Helm templates for `.Values` references and reading the
//! Dockerfile's stages and shell commands.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(here)
}

/// Reports a skipped test: prints `SKIP: <test>: <why>` and appends that line to the file
/// named by `$EDGEVIP_SKIP_LOG` (scripts/test counts them and fails on any as root).
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIP: {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("EDGEVIP_SKIP_LOG") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            panic!("{line} (and could not record it in {path:?}: {e})");
        }
    }
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

/// The body of the Helm template block opened by the action `{{ <opening> }}` (e.g.
/// `if .Values.loadBalancer.enabled`), up to its matching `{{ end }}` (nested
/// `if`/`with`/`range`/`define`/`block` counted, `else` branches included). `None` if
/// there is no such action or it is never closed.
pub fn helm_block<'a>(template: &'a str, opening: &str) -> Option<&'a str> {
    let mut actions = helm_actions(template);
    let body_start = actions.find(|a| a.2 == opening)?.1;
    let mut depth = 1usize;
    for (start, _, action) in actions {
        let word = action.split_whitespace().next().unwrap_or("");
        if matches!(word, "if" | "with" | "range" | "define" | "block") {
            depth += 1;
        } else if word == "end" {
            depth -= 1;
            if depth == 0 {
                return Some(&template[body_start..start]);
            }
        }
    }
    None
}

/// The actions `{{ … }}` of a template as (start, end, trimmed content), comments skipped.
fn helm_actions(template: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let start = from + template[from..].find("{{")?;
            let open = template[start + 2..].trim_start_matches('-').trim_start();
            // A comment `{{/* … */}}` may contain `{{` and `}}`: it ends at `*/`.
            let search_from = if open.starts_with("/*") {
                let body = template.len() - open.len();
                body + open.find("*/")? + 2
            } else {
                start + 2
            };
            let end = search_from + template[search_from..].find("}}")? + 2;
            from = end;
            let inner = template[start + 2..end - 2]
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim();
            if !inner.starts_with("/*") {
                return Some((start, end, inner));
            }
        }
    })
}

/// Every command-line flag (`--name`, lowercase, digits and dashes) mentioned in a text, in
/// order of appearance, repeats included. `--name=value` yields `--name`; a bare `--` or a
/// `---` separator yields nothing.
pub fn flag_tokens(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = text[i..].find("--") {
        let start = i + pos;
        let mut j = start + 2;
        let preceded_ok =
            start == 0 || !(bytes[start - 1] == b'-' || is_ident_byte(bytes[start - 1]));
        if preceded_ok && j < bytes.len() && bytes[j].is_ascii_lowercase() {
            while j < bytes.len()
                && (bytes[j].is_ascii_lowercase() || bytes[j].is_ascii_digit() || bytes[j] == b'-')
            {
                j += 1;
            }
            out.push(text[start..j].trim_end_matches('-').to_string());
        } else {
            while j < bytes.len() && bytes[j] == b'-' {
                j += 1;
            }
        }
        i = j;
    }
    out
}

/// The YAML sequence items that a text shows commented out, one per line as
/// `# - item` (the item unquoted when it is a double-quoted scalar), in order.
pub fn commented_list_items(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("# - "))
        .map(|item| {
            let item = item.trim();
            item.strip_prefix('"')
                .and_then(|i| i.strip_suffix('"'))
                .unwrap_or(item)
                .to_string()
        })
        .collect()
}

/// One Dockerfile instruction: the keyword (upper-cased) and its arguments, continuation
/// lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

/// One build stage: `FROM <image> [AS <name>]` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub image: String,
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The arguments of every instruction with this keyword, in order.
    pub fn args_of(&self, keyword: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|i| i.keyword.eq_ignore_ascii_case(keyword))
            .map(|i| i.args.as_str())
            .collect()
    }
}

/// A Dockerfile's instructions, as the builder reads them: comment and blank lines
/// dropped (also between continuation lines), lines ending in `\` joined with the next.
/// Parser directives (`# syntax=…`) count as comments. The default escape character only.
pub fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (part, more) = match line.trim_end().strip_suffix('\\') {
            Some(p) => (p, true),
            None => (line.trim_end(), false),
        };
        let joined = match current.take() {
            Some(mut c) => {
                c.push(' ');
                c.push_str(part.trim());
                c
            }
            None => part.trim().to_string(),
        };
        if more {
            current = Some(joined);
        } else {
            out.extend(instruction(&joined));
        }
    }
    if let Some(c) = current {
        out.extend(instruction(&c));
    }
    out
}

fn instruction(line: &str) -> Option<Instruction> {
    let line = line.trim();
    let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    (!keyword.is_empty()).then(|| Instruction {
        keyword: keyword.to_ascii_uppercase(),
        args: args.trim().to_string(),
    })
}

/// The instructions before the first `FROM` (global `ARG`s) and the build stages.
pub fn dockerfile_stages(text: &str) -> (Vec<Instruction>, Vec<Stage>) {
    let mut global = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in dockerfile_instructions(text) {
        if ins.keyword == "FROM" {
            let mut words = ins.args.split_whitespace().filter(|w| !w.starts_with("--"));
            let image = words.next().unwrap_or_default().to_string();
            let name = match (words.next(), words.next()) {
                (Some(a), Some(n)) if a.eq_ignore_ascii_case("as") => Some(n.to_string()),
                _ => None,
            };
            stages.push(Stage {
                image,
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(ins);
        } else {
            global.push(ins);
        }
    }
    (global, stages)
}

/// The simple commands of a shell-form `RUN`: words split at whitespace, commands at
/// `&&`, `||` and `;`. No quoting, expansion or redirection: enough for a Dockerfile that
/// keeps its commands plain (the check fails rather than misreads anything fancier).
pub fn shell_commands(run: &str) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for word in run.split_whitespace() {
        if matches!(word, "&&" | "||") {
            out.push(Vec::new());
            continue;
        }
        let (word, ends) = match word.strip_suffix(';') {
            Some(w) => (w, true),
            None => (word, false),
        };
        if !word.is_empty() {
            out.last_mut().expect("never empty").push(word.to_string());
        }
        if ends {
            out.push(Vec::new());
        }
    }
    out.retain(|c| !c.is_empty());
    out
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
    fn finds_helm_blocks() {
        let t = "BEFORE\n{{- if .Values.x.enabled }}\nB1 {{ .Values.y }}\n{{- if .Values.z }}\nB2\n{{- else }}\nB3\n{{- end }}\n{{/* {{ end }} }} */}}\n{{- range .Values.l }}B4{{ end }}\n{{- end }}\nAFTER\n{{ if .Values.w }}W{{ end }}";
        let b = helm_block(t, "if .Values.x.enabled").expect("block");
        for inside in ["B1", "B2", "{{- else }}", "B3", "B4"] {
            assert!(b.contains(inside), "{inside} not in {b:?}");
        }
        assert!(
            !b.contains("BEFORE") && !b.contains("AFTER") && !b.contains('W'),
            "{b:?}"
        );
        assert_eq!(helm_block(t, "if .Values.w"), Some("W"));
        assert_eq!(helm_block(t, "if .Values.nope"), None);
        assert_eq!(
            helm_block("{{ if .Values.x }}never closed", "if .Values.x"),
            None
        );
    }

    #[test]
    fn finds_flag_tokens() {
        let t = "- --load-balancers\n---\n  --unicast=true -- x {{ printf \"--unicast=%t\" }} a--b ---c --lb-vrid 51 (--x-)";
        assert_eq!(
            flag_tokens(t),
            vec![
                "--load-balancers",
                "--unicast",
                "--unicast",
                "--lb-vrid",
                "--x"
            ]
        );
    }

    #[test]
    fn finds_commented_list_items() {
        let t = "  - a\n  # - --lb-vrid\n  # - \"51\"\n  # Optionally `- --x`\n#  - y\n";
        assert_eq!(commented_list_items(t), vec!["--lb-vrid", "51"]);
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

    #[test]
    fn reads_dockerfile_stages() {
        let t = "# syntax=docker/dockerfile:1\nARG BASE=rust:1\n\nFROM ${BASE} AS build\nRUN a \\\n # inside\n\n  && b\nfrom --platform=linux/amd64 debian:12-slim\ncopy --from=build /x /x\nCMD [\"run\"]\n";
        let (global, stages) = dockerfile_stages(t);
        assert_eq!(
            global,
            vec![Instruction {
                keyword: "ARG".into(),
                args: "BASE=rust:1".into()
            }]
        );
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].image, "${BASE}");
        assert_eq!(stages[0].name.as_deref(), Some("build"));
        assert_eq!(stages[0].args_of("RUN"), vec!["a && b"]);
        assert_eq!(stages[1].image, "debian:12-slim");
        assert_eq!(stages[1].name, None);
        assert_eq!(stages[1].args_of("COPY"), vec!["--from=build /x /x"]);
        assert_eq!(stages[1].args_of("cmd"), vec!["[\"run\"]"]);
    }

    #[test]
    fn splits_shell_commands() {
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shell_commands("apt-get update && X=1 apt-get install -y a b; rm -rf /l || true"),
            vec![
                w(&["apt-get", "update"]),
                w(&["X=1", "apt-get", "install", "-y", "a", "b"]),
                w(&["rm", "-rf", "/l"]),
                w(&["true"]),
            ]
        );
        assert_eq!(shell_commands(" && ; "), Vec::<Vec<String>>::new());
    }
}
