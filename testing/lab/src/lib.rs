//! The namespace lab: a bridge in a "switch" namespace, N edge hosts and a client, each in
//! its own namespace with an `eth0` on the bridge. Nothing touches the root namespace's
//! interfaces, and everything is removed on drop, also when a test panics.
//!
//! Addresses: hosts 192.0.2.11, .12, … and 2001:db8::11, …; the client .2 / ::2.

pub mod bgp;
pub mod capture;
pub mod chaos;
pub mod cluster;
pub mod https;
mod keepalived;
pub mod kube;
mod lab;
mod netns;
mod probe;
pub mod procstat;
pub mod services;

pub use cluster::{API, Cluster, Node, PORT, VIP4, VIP6};
pub use https::{HttpsServer, Pki, https_get};
pub use keepalived::{KeepalivedConf, keepalived_available, render_config};
pub use kube::KubeLab;
pub use lab::{Host, Lab, LabChild, LabSpec};
pub use netns::{cleanup_on_panic, in_netns, unique_prefix};
pub use probe::{OUTAGE_MIN, ProbeReport, Prober, RESPONDER_ARG, responder_from_args};

use std::time::{Duration, Instant};

/// True when the lab can run here; prints why not (and the test should return) otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        cluster::skip(test, "the namespace lab needs root");
        return false;
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        cluster::skip(test, "iproute2 (`ip`) is not installed");
        return false;
    }
    true
}

/// Polls `cond` every `poll` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, poll: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(poll);
    }
}

/// The benchmark binaries' command line: `[--edgevip PATH] [--quick]`. The default binary
/// is the `edgevip` next to the benchmark's own executable.
pub struct BenchArgs {
    pub bin: std::path::PathBuf,
    pub quick: bool,
}

impl BenchArgs {
    pub fn parse() -> BenchArgs {
        Self::parse_with(|_, _| false)
    }

    /// Like [`BenchArgs::parse`], with a benchmark's own options: `extra(flag, rest)` takes
    /// a flag it knows (and its value from `rest`) and says whether it did.
    pub fn parse_with(
        mut extra: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> bool,
    ) -> BenchArgs {
        let mut out = BenchArgs {
            bin: std::env::current_exe()
                .expect("own path")
                .with_file_name("edgevip"),
            quick: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--edgevip" => out.bin = args.next().expect("--edgevip PATH").into(),
                "--quick" => out.quick = true,
                other if extra(other, &mut args) => {}
                other => panic!("unknown argument {other}"),
            }
        }
        out
    }
}
