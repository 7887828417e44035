//! The chaos benchmark (issue 10): random faults on three nodes, one round after another,
//! and after each the check that exactly one node holds the VIP and that it is the right
//! one (see `edgevip_lab::chaos`). edgevip spends two thirds of its time from a YAML config
//! and one third in Kubernetes mode (where the API server also goes away); keepalived 2.2.7
//! runs the scenarios that apply to it (no API outage) for the whole time, on the same
//! seed, so both face the same sequence of rounds while both last.
//!
//! Usage: edgevip-bench-chaos [--seconds N] [--seed S] [--peer edgevip|keepalived|both]
//!        [--edgevip PATH] [--verbose]          (as root; `bench/chaos/run`)
//! `--seconds`: per peer (default 600). Exits 1 when a round of edgevip broke the invariant.

use std::path::PathBuf;
use std::time::Duration;

use edgevip_lab::chaos::{self, Options, Peer, PeerReport};

struct Args {
    bin: PathBuf,
    seconds: u64,
    seed: u64,
    edgevip: bool,
    keepalived: bool,
    verbose: bool,
}

fn args() -> Args {
    let mut out = Args {
        bin: std::env::current_exe()
            .expect("own path")
            .with_file_name("edgevip"),
        seconds: 600,
        seed: 10,
        edgevip: true,
        keepalived: true,
        verbose: false,
    };
    let mut a = std::env::args().skip(1);
    while let Some(x) = a.next() {
        let mut num = |what: &str| -> u64 {
            a.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{what} N"))
        };
        match x.as_str() {
            "--seconds" => out.seconds = num("--seconds"),
            "--seed" => out.seed = num("--seed"),
            "--peer" => match a.next().as_deref() {
                Some("edgevip") => (out.edgevip, out.keepalived) = (true, false),
                Some("keepalived") => (out.edgevip, out.keepalived) = (false, true),
                Some("both") => (out.edgevip, out.keepalived) = (true, true),
                other => panic!("--peer edgevip|keepalived|both, not {other:?}"),
            },
            "--edgevip" => out.bin = a.next().expect("--edgevip PATH").into(),
            "--verbose" => out.verbose = true,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(out.seconds >= 10, "--seconds N (N >= 10)");
    out
}

fn main() {
    edgevip_lab::cleanup_on_panic();
    let a = args();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the namespace lab needs root");
        std::process::exit(1);
    }
    if a.keepalived && !edgevip_lab::keepalived_available() {
        eprintln!("keepalived is not installed: apt-get install keepalived");
        std::process::exit(1);
    }
    if a.edgevip {
        assert!(
            a.bin.exists(),
            "{} not found: cargo build --release -p edgevip",
            a.bin.display()
        );
    }
    let opts = |secs: u64| Options {
        bin: a.bin.clone(),
        duration: Duration::from_secs(secs),
        seed: a.seed,
        verbose: a.verbose,
    };
    println!(
        "chaos: 3 nodes, VRRPv3 100 ms adverts, VIP {}, seed {}, {} s per peer",
        edgevip_lab::VIP4,
        a.seed,
        a.seconds
    );
    println!("client: one UDP request to the VIP every 2 ms; gap = longest time without an answer");
    println!(
        "in a round; unreachable = sum of silences of 10 ms or more. Settle bounds: 3 s while"
    );
    println!("faults last, 8 s after recovery (20 s in Kubernetes mode), stable for 300 ms.\n");
    let run = |peer: Peer, secs: u64| -> PeerReport {
        let r = chaos::run("bench_chaos", peer, &opts(secs)).expect("the lab runs here");
        println!("{}", r.render());
        r
    };
    let mut reports = Vec::new();
    let mut ev = None;
    if a.edgevip {
        let plain = a.seconds * 2 / 3;
        let r = run(Peer::Edgevip, plain);
        reports.push(run(Peer::EdgevipKube, a.seconds - plain));
        ev = Some(r.clone());
        reports.push(r);
    }
    if a.keepalived {
        let k = run(Peer::Keepalived, a.seconds);
        if let Some(e) = &ev {
            println!("### edgevip (YAML config) vs keepalived 2.2.7, same seed\n");
            println!("{}", chaos::stats::render_comparison(e, &k));
        }
        reports.push(k);
    }
    // keepalived's violations are a finding of the benchmark, edgevip's a failure.
    let violations: usize = reports
        .iter()
        .filter(|r| r.peer != Peer::Keepalived)
        .map(PeerReport::violations)
        .sum();
    if violations > 0 {
        eprintln!("{violations} edgevip violations");
        std::process::exit(1);
    }
}
