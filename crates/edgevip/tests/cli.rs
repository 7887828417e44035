//! The command line as operators use it (no root needed): `check` reports every error with
//! path and value, `run` refuses an invalid file, exits 0 on SIGTERM, logs JSON on request.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgevip"))
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("edgevip-cli-{}-{name}.yaml", std::process::id()));
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

const BAD: &str = "instances:\n  - name: Ingress\n    interface: eth0\n    vrid: 0\n    advert_interval: 105ms\n    vips: [192.0.2.300]\n";

#[test]
fn check_prints_every_error_with_path_and_value() {
    let p = temp_config("bad", BAD);
    let out = bin().args(["check", "--config"]).arg(&p).output().unwrap();
    let _ = std::fs::remove_file(&p);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "instances[0].vrid: 0 is out of range 1..255",
        "instances[0].name: \"Ingress\" must match [a-z0-9-]+",
        "instances[0].advert_interval: 105ms is not a multiple of 10ms",
        "instances[0].vips[0]: \"192.0.2.300\" is not an IP address",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
}

#[test]
fn check_accepts_the_documented_example() {
    let p = temp_config(
        "good",
        "api:\n  listen: 127.0.0.1:9180\ninstances:\n  - name: ingress\n    interface: eth0\n    vrid: 51\n    \
         priority: 150\n    version: 3\n    advert_interval: 100ms\n    preempt: true\n    preempt_delay: 0s\n    \
         vips: [192.0.2.100/24]\n    unicast_peers: []\n    auth_pass: \"\"\n    track_interfaces: []\n",
    );
    let out = bin().args(["check", "--config"]).arg(&p).output().unwrap();
    let _ = std::fs::remove_file(&p);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK, 1 instance(s)"));
}

#[test]
fn run_refuses_an_invalid_file() {
    let p = temp_config("run-bad", BAD);
    let out = bin().args(["run", "--config"]).arg(&p).output().unwrap();
    let _ = std::fs::remove_file(&p);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("instances[0].vrid"));
}

#[test]
fn run_logs_json_and_exits_zero_on_sigterm() {
    let p = temp_config("empty", "instances: []\n");
    let mut child = bin()
        .args(["--log-format", "json", "run", "--config"])
        .arg(&p)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&p);
    assert_eq!(status.code(), Some(0));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        assert!(
            v.get("level").is_some() && v.get("message").is_some(),
            "{l}"
        );
    }
}

/// `run --config-env VAR` (a static Pod's config in its own manifest): an invalid config
/// there is refused like a file's, naming the variable, the path and the value; an unset
/// variable is named too.
#[test]
fn run_from_an_environment_variable_refuses_what_a_file_would() {
    let out = bin()
        .args(["run", "--config-env", "EDGEVIP_TEST_CONFIG"])
        .env("EDGEVIP_TEST_CONFIG", BAD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("$EDGEVIP_TEST_CONFIG: invalid, not starting")
            && err.contains("instances[0].vrid: 0 is out of range 1..255"),
        "{err}"
    );
    let out = bin()
        .args(["run", "--config-env", "EDGEVIP_TEST_CONFIG"])
        .env_remove("EDGEVIP_TEST_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("$EDGEVIP_TEST_CONFIG: environment variable not found"),
        "{err}"
    );
    let out = bin()
        .args(["run", "--config-env", "X", "--config", "/etc/edgevip.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "one source only");
}

/// `completions` and `man` are generated from the command line definition: every
/// subcommand is in them.
#[test]
fn completions_and_man_page_cover_every_subcommand() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgevip"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let s = run(&["completions", shell]);
        for sub in ["run", "check", "status", "import", "completions", "man"] {
            assert!(s.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    assert!(run(&["completions", "bash"]).contains("complete -F"));
    let man = run(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH edgevip 1"),
        "{man}"
    );
    for sub in ["edgevip\\-import", "edgevip\\-check", "edgevip\\-man"] {
        assert!(man.contains(sub), "man page lacks {sub}");
    }
}
