//! The acceptance-path harness over its committed corpus (`fuzz/corpus/accept`), so CI
//! runs it without cargo-fuzz; plus a few deterministic mutations of each input.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn accept_corpus_and_mutations() {
    let seeds = replay("accept", 64, vrrp::fuzz::accept_one);
    assert!(seeds >= 5, "corpus has {seeds} seeds");
}
