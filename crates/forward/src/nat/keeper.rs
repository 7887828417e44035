//! Keeps the kernel's `inet edgevip` table in line with the desired NAT services, in a task
//! of its own so a slow `nft` never delays the daemon's loop. What is applied is what
//! `nft` confirmed: a failed or timed-out run leaves the previous state recorded (the batch
//! is one transaction, so the kernel kept it too) and is retried with a doubling backoff
//! (1 s up to 60 s) until it succeeds or a newer desired state replaces it. At start the
//! desired state is "no NAT": a table left by a crashed run is removed at once (a
//! restarting node holds no VIP, so nothing is lost), then the real rules follow.

use std::process::Stdio;
use std::time::Duration;

use nftables::schema::Nftables;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ruleset, teardown};
use crate::spec::NatService;

const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NatError {
    /// `nft` is not installed: no table of ours can have been made by this image.
    #[error("nft: {0}: not installed")]
    Missing(String),
    #[error("nft: {0}")]
    Failed(String),
}

/// How `nft` is run: the program (a test passes a fake) and the time a run may take
/// before it is killed.
#[derive(Debug, Clone)]
pub struct Nft {
    pub program: String,
    pub timeout: Duration,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            program: "nft".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Nft {
    /// `nft -j -f -` with the batch on stdin; killed after `timeout`.
    pub async fn run(&self, set: &Nftables<'_>) -> Result<(), NatError> {
        let json = serde_json::to_vec(set).map_err(|e| NatError::Failed(e.to_string()))?;
        let run = async {
            let mut child = tokio::process::Command::new(&self.program)
                .args(["-j", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => NatError::Missing(self.program.clone()),
                    _ => NatError::Failed(format!("{}: {e}", self.program)),
                })?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(&json)
                    .await
                    .map_err(|e| NatError::Failed(format!("writing the batch: {e}")))?;
            }
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| NatError::Failed(e.to_string()))?;
            if out.status.success() {
                Ok(())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                let err: String = err.trim().chars().take(512).collect();
                Err(NatError::Failed(format!("{}: {err}", out.status)))
            }
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| NatError::Failed(format!("killed after {:?}", self.timeout)))?
    }
}

/// What the kernel holds as far as we know, and how applying the desired state went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// The services in force; `None` until the first successful run (unknown).
    pub services: Option<Vec<NatService>>,
    /// Failed runs in a row (0 once in line).
    pub failures: u32,
    pub total_failures: u64,
    pub last_error: Option<String>,
}

impl Applied {
    pub fn in_line_with(&self, want: &[NatService]) -> bool {
        self.services.as_deref() == Some(want)
    }
}

pub struct Keeper {
    want: watch::Sender<Vec<NatService>>,
    applied: watch::Receiver<Applied>,
    task: JoinHandle<()>,
    nft: Nft,
}

impl Keeper {
    pub fn spawn(nft: Nft) -> Keeper {
        let (want, want_rx) = watch::channel(Vec::new());
        let (applied_tx, applied) = watch::channel(Applied::default());
        let task = tokio::spawn(keep(nft.clone(), want_rx, applied_tx));
        Keeper {
            want,
            applied,
            task,
            nft,
        }
    }

    /// The desired services; only the latest counts.
    pub fn set(&self, services: &[NatService]) {
        let mut s: Vec<NatService> = services.to_vec();
        s.sort();
        self.want.send_if_modified(|w| {
            let changed = *w != s;
            *w = s;
            changed
        });
    }

    pub fn applied(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// Stops keeping and removes the table (shutdown).
    pub async fn remove(self) -> Result<(), NatError> {
        self.task.abort();
        self.nft.run(&teardown()).await
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep(
    nft: Nft,
    mut want: watch::Receiver<Vec<NatService>>,
    applied: watch::Sender<Applied>,
) {
    loop {
        let target = want.borrow_and_update().clone();
        if !applied.borrow().in_line_with(&target) {
            let set = if target.iter().all(|s| s.backends.is_empty()) {
                teardown()
            } else {
                ruleset(&target)
            };
            let started = std::time::Instant::now();
            match nft.run(&set).await {
                Ok(()) => {
                    tracing::info!(services = target.len(), took = ?started.elapsed(), "NAT rules in force");
                    applied.send_modify(|a| {
                        a.services = Some(target);
                        a.failures = 0;
                        a.last_error = None;
                    });
                }
                // Nothing to remove and no nft (forwarding unused on this image): in line.
                Err(NatError::Missing(p)) if target.iter().all(|s| s.backends.is_empty()) => {
                    tracing::debug!(program = %p, "nft not installed; no NAT wanted");
                    applied.send_modify(|a| a.services = Some(target));
                }
                Err(e) => {
                    let mut failures = 0;
                    applied.send_modify(|a| {
                        a.failures += 1;
                        a.total_failures += 1;
                        a.last_error = Some(e.to_string());
                        failures = a.failures;
                    });
                    let backoff = backoff(failures);
                    tracing::error!(error = %e, retry_in = ?backoff, "NAT rules not applied: the previous ones stay in force");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => continue,
                        r = want.changed() => if r.is_err() { return } else { continue },
                    }
                }
            }
        }
        if want.changed().await.is_err() {
            return;
        }
    }
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), BACKOFF_MAX);
    }
}
