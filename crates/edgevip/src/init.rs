//! PID 1 in a container: orphans (a notify hook's grandchildren) are re-parented to PID 1,
//! and nobody reaps them unless PID 1 does. Reaping with `waitpid(-1)` inside the daemon
//! would steal the exit status of children tokio waits for (hooks, exec checks), so as PID 1
//! edgevip becomes a tiny init instead, like tini: it runs the real daemon as its child,
//! forwards SIGTERM/SIGINT/SIGHUP to it, reaps every process that ends, and exits with
//! the daemon's status.

use std::process::ExitCode;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

/// Set in the daemon child so it does not become an init again.
const CHILD_ENV: &str = "EDGEVIP_INIT_CHILD";

/// As PID 1: runs the daemon as a child and returns its exit code. Otherwise `None`.
pub fn run_if_pid1() -> Option<ExitCode> {
    if std::process::id() != 1 || std::env::var_os(CHILD_ENV).is_some() {
        return None;
    }
    Some(supervise())
}

fn supervise() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("edgevip init: cannot find my executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let child = match std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .spawn()
    {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => {
            eprintln!("edgevip init: cannot start the daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgevip init: {e}");
            let _ = kill(child, Signal::SIGTERM);
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let (Ok(mut chld), Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::child()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            eprintln!("edgevip init: cannot install signal handlers");
            let _ = kill(child, Signal::SIGTERM);
            return ExitCode::FAILURE;
        };
        loop {
            if let Some(code) = reap(child) {
                return code;
            }
            tokio::select! {
                _ = chld.recv() => {}
                _ = term.recv() => { let _ = kill(child, Signal::SIGTERM); }
                _ = int.recv() => { let _ = kill(child, Signal::SIGINT); }
                _ = hup.recv() => { let _ = kill(child, Signal::SIGHUP); }
            }
        }
    })
}

/// Reaps every ended process; the daemon's exit code once it has ended.
fn reap(daemon: Pid) -> Option<ExitCode> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == daemon => {
                return Some(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == daemon => {
                return Some(ExitCode::from(128u8.wrapping_add(sig as u8)));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
