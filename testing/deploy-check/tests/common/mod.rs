//! Shared by the deploy-check test binaries: the current `edgevip` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use edgevip_deploy_check::repo_root;
use serde_json::Value;

/// The current `edgevip` binary: `$EDGEVIP_BIN` when set, else built here as `cargo test -p
/// edgevip` builds it for its own tests (`--test cli --no-run`: the same features, so the
/// two never rebuild each other's binary; a no-op when it is up to date) and located from
/// cargo's JSON messages, so a test run alone never checks a stale or missing binary. Built
/// once per test process; a failed build fails every test that needs the binary.
pub fn edgevip_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("EDGEVIP_BIN") {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!("EDGEVIP_BIN={} is no file", p.display()))
            };
        }
        build_edgevip()
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

fn build_edgevip() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(&cargo);
    // What cargo set for this test process (its package's name, manifest dir, …) would look
    // like a changed environment to build scripts (ring's) and rebuild them.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let from_cargo = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_CFG_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || [
                "OUT_DIR",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&k.as_ref());
        if from_cargo {
            cmd.env_remove(k.as_ref());
        }
    }
    let out = cmd
        .args(["test", "-p", "edgevip", "--test", "cli", "--no-run"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(repo_root().join("Cargo.toml"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", Path::new(&cargo).display()))?;
    if !out.status.success() {
        return Err(format!("building edgevip failed: {}", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact" && m["target"]["kind"] == serde_json::json!(["bin"])
        })
        .filter(|m| m["target"]["name"] == "edgevip")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo named no edgevip executable".to_string())
}
