//! Thousands of random multi-router scenarios in the deterministic simulator.
//! Its own harness, so the counts are printed on every run, not only on failure.
//!
//! `VRRP_SIM_SEEDS=N` sets how many seeds (default 2000); `VRRP_SIM_SEED=S` replays one seed
//! and prints its trace.

use std::time::{Duration, Instant};

use vrrp::sim::{Outcome, run_seed};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

fn main() {
    if let Some(seed) = env_u64("VRRP_SIM_SEED") {
        match run_seed(seed) {
            Ok(o) => println!(
                "seed {seed}: ok, {} events, {} transitions",
                o.events, o.transitions
            ),
            Err(f) => {
                eprintln!("{f}");
                std::process::exit(1);
            }
        }
        return;
    }
    let seeds = env_u64("VRRP_SIM_SEEDS").unwrap_or(2000);
    let base = env_u64("VRRP_SIM_BASE").unwrap_or(0);
    let started = Instant::now();
    let mut total = Outcome::default();
    let mut virtual_time = Duration::ZERO;
    let mut failures = 0u64;
    for seed in base..base + seeds {
        match run_seed(seed) {
            Ok(o) => {
                total.events += o.events;
                total.transitions += o.transitions;
                total.checks += o.checks;
                virtual_time += o.virtual_time;
            }
            Err(f) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("{f}\n");
                }
            }
        }
    }
    println!(
        "vrrp simulator: {seeds} seeds, {} events, {} transitions, {} invariant checks, \
         {:.0} s simulated in {:.2} s",
        total.events,
        total.transitions,
        total.checks,
        virtual_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!("{} passed, {failures} failed", seeds - failures);
    if failures > 0 {
        std::process::exit(1);
    }
}
