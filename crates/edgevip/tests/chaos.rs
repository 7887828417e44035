//! The short chaos run of CI (issue 10; the full one is `bench/chaos/run`): random faults
//! on three edgevip nodes for about a minute — SIGKILL and restart, SIGSTOP/SIGCONT of the
//! master, link flaps, planned restarts, reloads with a changed priority, and in
//! Kubernetes mode API-server outages — with a fixed seed; after every round exactly one
//! node holds the VIP and it is the right one, and the worst gap a client sees is bounded.
//! Skipped unless root.

use std::time::Duration;

use edgevip_lab::chaos::{self, Options, Peer, PeerReport};

const SEED: u64 = 10;
/// The longest gap of a round: a failover waits out Master_Down_Interval (≈ 350 ms at
/// 100 ms adverts for the second node, 349 ms for the third when two fail at once). Worst
/// of this test's runs on a machine loaded by other builds: 328 ms; bound 3x.
const WORST_GAP: Duration = Duration::from_millis(1000);

fn run(test: &str, peer: Peer, secs: u64) -> Option<PeerReport> {
    let opts = Options {
        bin: env!("CARGO_BIN_EXE_edgevip").into(),
        duration: Duration::from_secs(secs),
        seed: SEED,
        verbose: true,
    };
    let r = chaos::run(test, peer, &opts)?;
    eprintln!("{}", r.render());
    Some(r)
}

fn assert_sound(r: &PeerReport) {
    assert!(r.rounds.len() >= 5, "too few rounds: {}", r.rounds.len());
    assert_eq!(r.violations(), 0, "{}", r.render());
    assert!(
        r.worst_gap() < WORST_GAP,
        "worst gap {:?}\n{}",
        r.worst_gap(),
        r.render()
    );
}

/// One test, two rigs one after the other (the lab runs one cluster at a time per process).
#[test]
fn chaos_one_holder_and_the_right_one_after_every_round() {
    let Some(plain) = run("chaos_yaml", Peer::Edgevip, 40) else {
        return;
    };
    let Some(kube) = run("chaos_kube", Peer::EdgevipKube, 25) else {
        return;
    };
    assert_sound(&plain);
    assert_sound(&kube);
}
