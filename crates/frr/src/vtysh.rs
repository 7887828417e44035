//! The process side: write the rendered file, apply it with `frr-reload.py --reload`, and
//! ask vtysh for state. Blocking (each call a child process with a deadline); the daemon
//! calls it from `spawn_blocking`.
//!
//! frr-reload compares the file with `show running-config` and sends only the difference
//! as configuration commands, so a session whose `neighbor` lines did not change is not
//! reset (the lab checks this on the router's session uptime). Its cost is a Python start
//! and two vtysh round trips: about 0.2–0.3 s here.
//!
//! vtysh reaches the daemons through their vty sockets (UNIX sockets: a path, not a network
//! namespace), so one edgevip, or a test, can drive an FRR in another namespace by its
//! socket directory.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::state::{self, PeerState, Speaker};

#[derive(Debug, thiserror::Error)]
pub enum FrrError {
    #[error("{cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd}: no answer within {timeout:?}")]
    Timeout { cmd: String, timeout: Duration },
    #[error("{cmd}: exit {status}: {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] state::ParseError),
}

/// Where the FRR to drive lives.
#[derive(Debug, Clone)]
pub struct Frr {
    /// `vtysh`, or a full path.
    pub vtysh: PathBuf,
    /// Debian's `frr-pythontools`: `/usr/lib/frr/frr-reload.py`.
    pub reload_script: PathBuf,
    /// The daemons' `--vty_socket` directory; `None`: FRR's default (`/var/run/frr`).
    pub vty_socket: Option<PathBuf>,
    /// Where the rendered `frr.conf` is written (mode 0600: it holds the peers' passwords).
    /// frr-reload also reads `vtysh.conf` from this file's directory.
    pub config_file: PathBuf,
    /// Deadline of each command.
    pub timeout: Duration,
}

impl Frr {
    /// A system FRR (Debian's packages, default sockets), its config in `/etc/frr/frr.conf`.
    pub fn system() -> Frr {
        Frr {
            vtysh: "vtysh".into(),
            reload_script: "/usr/lib/frr/frr-reload.py".into(),
            vty_socket: None,
            config_file: "/etc/frr/frr.conf".into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The FRR a `bgp:` section names (`frr_config`, `frr_vty_socket`).
    pub fn for_config(b: &edgevip_config::Bgp) -> Frr {
        Frr {
            vty_socket: b.frr_vty_socket.clone(),
            config_file: b.frr_config.clone(),
            ..Frr::system()
        }
    }

    /// An FRR whose daemons were started with `--vty_socket dir`, its config in
    /// `dir/frr.conf` (the lab's layout: one directory per node).
    pub fn in_dir(dir: &Path) -> Frr {
        Frr {
            vty_socket: Some(dir.to_path_buf()),
            config_file: dir.join("frr.conf"),
            ..Frr::system()
        }
    }

    /// Writes `text` and applies the difference to the running daemons.
    pub fn apply(&self, text: &str) -> Result<(), FrrError> {
        self.write_config(text)?;
        let mut cmd = self.reload("--reload");
        cmd.arg("--stdout").arg(&self.config_file);
        let out = self.run(cmd)?;
        // frr-reload exits 0 even when a line was refused; it logs the refusal.
        if out.contains("ERROR") || out.contains("% ") {
            return Err(FrrError::Failed {
                cmd: "frr-reload.py --reload".into(),
                status: "0".into(),
                stderr: out.trim().to_string(),
            });
        }
        Ok(())
    }

    /// Writes `text` and applies `commands` (from [`crate::network_delta`]) in one vtysh
    /// configuration session: the fast path for a VIP announced or withdrawn. The caller
    /// falls back to [`Frr::apply`] on an error.
    pub fn apply_commands(&self, text: &str, commands: &[String]) -> Result<(), FrrError> {
        self.write_config(text)?;
        if commands.is_empty() {
            return Ok(());
        }
        let mut cmd = self.vtysh();
        cmd.arg("-c").arg("configure terminal");
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        let out = self.run(cmd)?;
        if out.contains("% ") {
            return Err(FrrError::Failed {
                cmd: "vtysh configure".into(),
                status: "0".into(),
                stderr: out.trim().to_string(),
            });
        }
        Ok(())
    }

    /// The lines frr-reload would change now (`--test`), for checks and diagnostics.
    pub fn pending(&self, text: &str) -> Result<String, FrrError> {
        self.write_config(text)?;
        let mut cmd = self.reload("--test");
        cmd.arg(&self.config_file);
        self.run(cmd)
    }

    /// One vtysh command's output.
    pub fn show(&self, command: &str) -> Result<String, FrrError> {
        let mut cmd = self.vtysh();
        cmd.arg("-c").arg(command);
        self.run(cmd)
    }

    /// vtysh on our daemons' socket.
    fn vtysh(&self) -> Command {
        let mut cmd = Command::new(&self.vtysh);
        if let Some(s) = &self.vty_socket {
            cmd.arg("--vty_socket").arg(s);
        }
        cmd
    }

    /// frr-reload.py in `mode` (`--reload`, `--test`) on our daemons and config directory;
    /// the caller adds the config file.
    fn reload(&self, mode: &str) -> Command {
        let dir = self.config_dir();
        let mut cmd = Command::new("python3");
        cmd.arg(&self.reload_script).arg(mode);
        if let Some(s) = &self.vty_socket {
            cmd.arg("--vty_socket").arg(s);
        }
        // A vtysh given by path: frr-reload runs the one beside it.
        if let Some(bindir) = self.vtysh.parent().filter(|p| !p.as_os_str().is_empty()) {
            cmd.arg("--bindir").arg(bindir);
        }
        cmd.arg("--confdir")
            .arg(&dir)
            .arg("--rundir")
            .arg(&dir)
            .arg("--log-level")
            .arg("error");
        cmd
    }

    /// Sessions, BFD and advertised prefixes of each of `peers` (the configured ones; a
    /// peer bgpd does not know yet shows with no session).
    pub fn speaker(&self, peers: &[IpAddr]) -> Result<Speaker, FrrError> {
        let sessions = state::sessions(&self.show("show bgp summary json")?)?;
        let bfd = state::bfd_sessions(&self.show("show bfd peers json")?)?;
        let mut out = Speaker::default();
        for &peer in peers {
            let session = sessions.iter().find(|s| s.peer == peer).cloned();
            let advertised = match &session {
                Some(s) if s.is_established() => {
                    let family = if peer.is_ipv4() { "ipv4" } else { "ipv6" };
                    state::advertised(&self.show(&format!(
                        "show bgp {family} unicast neighbors {peer} advertised-routes json"
                    ))?)?
                }
                _ => Vec::new(),
            };
            out.peers.push(PeerState {
                peer,
                session,
                bfd: bfd.iter().find(|b| b.peer == peer).cloned(),
                advertised,
            });
        }
        Ok(out)
    }

    fn config_dir(&self) -> PathBuf {
        self.config_file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// Atomically (a temporary file renamed over), mode 0600.
    fn write_config(&self, text: &str) -> Result<(), FrrError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| FrrError::Write {
            path: self.config_file.clone(),
            source,
        };
        let tmp = self.config_file.with_extension("conf.edgevip-tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.config_file).map_err(err)?;
        // vtysh complains on every call without one.
        let vtysh_conf = self.config_dir().join("vtysh.conf");
        if !vtysh_conf.exists() {
            let _ = std::fs::write(vtysh_conf, "");
        }
        Ok(())
    }

    /// Runs `cmd` to completion within the deadline; its stdout, or an error with stderr.
    fn run(&self, mut cmd: Command) -> Result<String, FrrError> {
        let name = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| FrrError::Spawn {
                cmd: name.clone(),
                source,
            })?;
        // Drain both pipes on threads: a full pipe would block the child past any deadline.
        let mut so = child.stdout.take();
        let mut se = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = so.as_mut() {
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = se.as_mut() {
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(FrrError::Timeout {
                        cmd: name,
                        timeout: self.timeout,
                    });
                }
                Err(source) => return Err(FrrError::Spawn { cmd: name, source }),
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        if status.success() {
            Ok(stdout)
        } else {
            Err(FrrError::Failed {
                cmd: name,
                status: status.to_string(),
                stderr: stderr.trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell stands in for vtysh: `show(cmd)` runs `sh -c cmd`.
    fn sh(timeout: Duration) -> Frr {
        Frr {
            vtysh: "/bin/sh".into(),
            timeout,
            ..Frr::in_dir(&std::env::temp_dir())
        }
    }

    #[test]
    fn a_hung_command_is_killed_at_the_deadline() {
        let frr = Frr {
            vty_socket: None,
            ..sh(Duration::from_millis(200))
        };
        let t0 = Instant::now();
        let err = frr.show("sleep 5").unwrap_err();
        assert!(matches!(err, FrrError::Timeout { .. }), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }

    #[test]
    fn output_and_failures_come_back() {
        let frr = Frr {
            vty_socket: None,
            ..sh(Duration::from_secs(5))
        };
        assert_eq!(frr.show("echo '{}'").unwrap().trim(), "{}");
        // More than a pipe buffer: both pipes are drained while waiting.
        assert_eq!(frr.show("head -c 200000 /dev/zero").unwrap().len(), 200_000);
        let err = frr.show("echo bad >&2; exit 3").unwrap_err();
        assert!(err.to_string().contains("bad"), "{err}");
    }
}
