//! Network namespaces: unique names, guaranteed removal, running code inside one.

use std::fs::File;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Namespaces alive in this process, for the panic hook of binaries built with
/// `panic = "abort"` (no unwinding, so no Drop).
static LIVE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Makes a panic remove this process's namespaces (and kill what runs in them) before the
/// process aborts. For the demo and benchmark binaries; tests unwind and use Drop.
pub fn cleanup_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let names = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
        for n in names.iter().rev() {
            remove(n);
        }
    }));
}

fn remove(name: &str) {
    // Processes still inside would keep it alive: kill them first.
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(p) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _ = ip(&["netns", "del", name]);
}

/// A short prefix unique to this process and call (interface names derive from it and
/// must stay within 15 bytes).
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!("ev{:x}{:x}", pid % 0xffff, n)
}

/// Runs `f` on a fresh thread that has entered namespace `ns`; sockets created there stay
/// in that namespace for their whole life. The handle yields `None` only if entering failed,
/// which is reported here as an error first.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<std::thread::JoinHandle<Option<T>>> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let entered = setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from);
        let ok = entered.is_ok();
        let _ = tx.send(entered);
        // Never run `f` in the wrong namespace.
        ok.then(f)
    });
    rx.recv()
        .map_err(|_| io::Error::other("namespace thread died"))??;
    Ok(handle)
}

/// Runs `ip` with `args`; an error carries its stderr.
pub(crate) fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Appends `name` to the file named by `EDGEVIP_NETNS_LOG`, so `scripts/test` checks for
/// leftovers among the namespaces its own run created (a lab another process runs on the
/// same machine at the same time is not a leak of this one).
fn record(name: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("EDGEVIP_NETNS_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{name}");
    }
}

/// One namespace, deleted on drop.
pub(crate) struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(name: String) -> io::Result<Netns> {
        ip(&["netns", "add", &name])?;
        record(&name);
        if let Ok(mut l) = LIVE.lock() {
            l.push(name.clone());
        }
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
        if let Ok(mut l) = LIVE.lock() {
            l.retain(|n| *n != self.name);
        }
    }
}
