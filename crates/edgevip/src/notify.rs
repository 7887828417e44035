//! Notify hooks: a command run on every state change, for environments where moving the IP
//! also needs an API call (cloud floating IPs). Never blocking the instance: a slow hook
//! must not delay VRRP.
//!
//! Per instance and family, hooks run one at a time and the latest state wins: a change
//! while a hook runs kills that hook (its whole process group) before the next starts, and
//! states queued meanwhile are skipped. So a slow "backup" hook can never finish after the
//! later "master" one started. A hook runs in a process group of its own, is killed with
//! its group after `HOOK_TIMEOUT`, and its output is logged, truncated. (As PID 1, `init`
//! reaps what a hook leaves behind.)

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use edgevip_config::Instance;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

use crate::metrics::{CheckResultLabels, Metrics};

/// How long a hook may run before it is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of a hook's stdout and of its stderr kept for the log.
const OUTPUT_CAP: usize = 1024;

/// One hook run: what to execute and what to report it as.
#[derive(Clone)]
struct Run {
    cmd: String,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    instance: String,
    state: String,
    timeout: Duration,
    metrics: Metrics,
}

/// The latest wanted run per instance/family, each read by its worker task.
fn workers() -> &'static Mutex<HashMap<String, watch::Sender<Option<Run>>>> {
    static W: OnceLock<Mutex<HashMap<String, watch::Sender<Option<Run>>>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

pub fn spawn(cfg: &Instance, family: &str, from: &str, to: &str, metrics: &Metrics) {
    let Some((cmd, args)) = cfg.notify.split_first() else {
        return;
    };
    let run = Run {
        cmd: cmd.clone(),
        args: args.to_vec(),
        env: vec![
            ("EDGEVIP_INSTANCE", cfg.name.clone()),
            ("EDGEVIP_FAMILY", family.to_string()),
            ("EDGEVIP_STATE", to.to_string()),
            ("EDGEVIP_PREVIOUS_STATE", from.to_string()),
            ("EDGEVIP_VRID", cfg.vrid.to_string()),
            (
                "EDGEVIP_VIPS",
                cfg.vips
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ],
        instance: cfg.name.clone(),
        state: to.to_string(),
        timeout: HOOK_TIMEOUT,
        metrics: metrics.clone(),
    };
    submit(format!("{}/{family}", cfg.name), run);
}

fn submit(key: String, run: Run) {
    let mut w = workers().lock().expect("notify workers");
    // A worker whose runtime ended (its receiver dropped) is replaced.
    if let Some(tx) = w.get(&key)
        && tx.send(Some(run.clone())).is_ok()
    {
        return;
    }
    let (tx, rx) = watch::channel(Some(run));
    w.insert(key, tx);
    tokio::spawn(worker(rx));
}

async fn worker(mut rx: watch::Receiver<Option<Run>>) {
    loop {
        let next = rx.borrow_and_update().clone();
        if let Some(run) = next {
            // A change that came during the run is taken at once.
            if execute(run, &mut rx).await {
                continue;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Runs one hook until it exits, times out, or a newer state supersedes it (returns true).
async fn execute(run: Run, newer: &mut watch::Receiver<Option<Run>>) -> bool {
    let mut superseded = false;
    let mut c = tokio::process::Command::new(&run.cmd);
    c.args(&run.args)
        .envs(run.env.iter().map(|(k, v)| (*k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let result = match c.spawn() {
        Err(e) => Err(e.to_string()),
        Ok(mut child) => {
            let pgid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
            let out = tokio::spawn(read_capped(child.stdout.take()));
            let err = tokio::spawn(read_capped(child.stderr.take()));
            let outcome = tokio::select! {
                r = tokio::time::timeout(run.timeout, child.wait()) => match r {
                    Ok(Ok(s)) if s.success() => Ok(()),
                    Ok(Ok(s)) => Err(format!("exited with {s}")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("killed after {:?}", run.timeout)),
                },
                _ = newer.changed() => {
                    superseded = true;
                    Err("superseded by a newer state: killed".to_string())
                }
            };
            if outcome.is_err()
                && let Some(pg) = pgid
            {
                let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait().await;
            }
            // Output still held open by a leftover grandchild is not waited for.
            let grab = |h: tokio::task::JoinHandle<String>| async move {
                tokio::time::timeout(Duration::from_millis(500), h)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default()
            };
            let (stdout, stderr) = (grab(out).await, grab(err).await);
            if !stdout.is_empty() || !stderr.is_empty() {
                tracing::info!(instance = %run.instance, hook = %run.cmd, state = %run.state, %stdout, %stderr, "notify hook output");
            }
            outcome
        }
    };
    if let Err(e) = &result {
        tracing::warn!(instance = %run.instance, hook = %run.cmd, state = %run.state, error = %e, "notify hook failed");
    }
    run.metrics
        .notify_runs
        .get_or_create(&CheckResultLabels {
            instance: run.instance.clone(),
            check: run.state.clone(),
            result: if result.is_ok() { "ok" } else { "failed" }.into(),
        })
        .inc();
    superseded
}

/// The first `OUTPUT_CAP` bytes (lossy UTF-8, "…" when cut); the rest is drained so the
/// hook never blocks on a full pipe.
async fn read_capped(r: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut r) = r else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    let mut cut = false;
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = OUTPUT_CAP - kept.len();
        kept.extend_from_slice(&buf[..n.min(room)]);
        cut |= n > room;
    }
    let mut s = String::from_utf8_lossy(&kept).trim_end().to_string();
    if cut {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hook_gets_the_state_in_its_environment() {
        let out = std::env::temp_dir().join(format!("edgevip-notify-{}", std::process::id()));
        let mut cfg = edgevip_config::parse(
            "instances: [{name: web, interface: eth0, vrid: 7, vips: [192.0.2.5/24]}]",
        )
        .unwrap()
        .instances
        .remove(0);
        cfg.notify = vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo \"$EDGEVIP_INSTANCE $EDGEVIP_FAMILY $EDGEVIP_PREVIOUS_STATE $EDGEVIP_STATE $EDGEVIP_VRID $EDGEVIP_VIPS\" > {}",
                out.display()
            ),
        ];
        let m = Metrics::new();
        spawn(&cfg, "ipv4", "backup", "master", &m);
        let mut text = String::new();
        for _ in 0..100 {
            text = std::fs::read_to_string(&out).unwrap_or_default();
            if !text.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(&out);
        assert_eq!(text.trim(), "web ipv4 backup master 7 192.0.2.5/24");
        cfg.notify = vec!["/nonexistent/hook".into()];
        spawn(&cfg, "ipv4", "master", "backup", &m);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(m.encode().contains("result=\"failed\""), "{}", m.encode());
    }

    fn instance(name: &str, script: String) -> Instance {
        let mut cfg = edgevip_config::parse(&format!(
            "instances: [{{name: {name}, interface: eth0, vrid: 7, vips: [192.0.2.5/24]}}]"
        ))
        .unwrap()
        .instances
        .remove(0);
        cfg.notify = vec!["sh".into(), "-c".into(), script];
        cfg
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("edgevip-notify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[tokio::test]
    async fn latest_state_wins_a_slow_backup_hook_never_finishes_after_master() {
        let out = tmp("order");
        let cfg = instance(
            "ordered",
            format!(
                "if [ \"$EDGEVIP_STATE\" = backup ]; then sleep 1; fi; echo $EDGEVIP_STATE >> {}",
                out.display()
            ),
        );
        let m = Metrics::new();
        spawn(&cfg, "ipv4", "init", "backup", &m);
        tokio::time::sleep(Duration::from_millis(100)).await;
        spawn(&cfg, "ipv4", "backup", "master", &m);
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        assert_eq!(
            text, "master\n",
            "the backup hook was killed, never ran after master"
        );
        assert!(
            m.encode().contains("check=\"backup\",result=\"failed\""),
            "{}",
            m.encode()
        );
    }

    #[tokio::test]
    async fn a_superseded_hook_is_killed_with_its_process_group() {
        let pidfile = tmp("group");
        let cfg = instance(
            "grouped",
            format!(
                "if [ \"$EDGEVIP_STATE\" = backup ]; then sleep 30 & echo $! > {}; wait; fi",
                pidfile.display()
            ),
        );
        let m = Metrics::new();
        spawn(&cfg, "ipv4", "init", "backup", &m);
        let mut pid = String::new();
        for _ in 0..100 {
            pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
            if !pid.trim().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(&pidfile);
        let pid = pid.trim().to_string();
        assert!(!pid.is_empty(), "the hook started its grandchild");
        spawn(&cfg, "ipv4", "backup", "master", &m);
        let mut alive = true;
        for _ in 0..100 {
            // Gone, or a zombie waiting for its (new) parent to reap it.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            alive = stat.split(") ").nth(1).is_some_and(|r| !r.starts_with('Z'));
            if !alive {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive, "the grandchild (pid {pid}) survived its hook");
    }

    #[tokio::test]
    async fn output_is_truncated_for_the_log() {
        let big = vec![b'x'; 5000];
        let s = read_capped(Some(&big[..])).await;
        assert_eq!(s.chars().filter(|c| *c == 'x').count(), OUTPUT_CAP);
        assert!(s.ends_with('…'));
        assert_eq!(read_capped(Some(&b"ok\n"[..])).await, "ok");
    }
}
