//! Notify hooks: a command run on every state change, for environments where moving the IP
//! also needs an API call (cloud floating IPs). Fire and forget, bounded, never blocking the
//! instance: a slow hook must not delay VRRP.

use std::time::Duration;

use edgevip_config::Instance;

use crate::metrics::{CheckResultLabels, Metrics};

/// How long a hook may run before it is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

pub fn spawn(cfg: &Instance, family: &str, from: &str, to: &str, metrics: &Metrics) {
    let Some((cmd, args)) = cfg.notify.split_first() else {
        return;
    };
    let mut c = tokio::process::Command::new(cmd);
    c.args(args)
        .env("EDGEVIP_INSTANCE", &cfg.name)
        .env("EDGEVIP_FAMILY", family)
        .env("EDGEVIP_STATE", to)
        .env("EDGEVIP_PREVIOUS_STATE", from)
        .env("EDGEVIP_VRID", cfg.vrid.to_string())
        .env(
            "EDGEVIP_VIPS",
            cfg.vips
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let (instance, cmd, state, metrics) = (
        cfg.name.clone(),
        cmd.clone(),
        to.to_string(),
        metrics.clone(),
    );
    tokio::spawn(async move {
        let result = match c.spawn() {
            Err(e) => Err(e.to_string()),
            Ok(mut child) => match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
                Ok(Ok(s)) if s.success() => Ok(()),
                Ok(Ok(s)) => Err(format!("exited with {s}")),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("killed after {HOOK_TIMEOUT:?}")),
            },
        };
        if let Err(e) = &result {
            tracing::warn!(%instance, hook = %cmd, %state, error = %e, "notify hook failed");
        }
        metrics
            .notify_runs
            .get_or_create(&CheckResultLabels {
                instance,
                check: state,
                result: if result.is_ok() { "ok" } else { "failed" }.into(),
            })
            .inc();
    });
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
}
