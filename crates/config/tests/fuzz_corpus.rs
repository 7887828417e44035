//! The config harness over its committed corpus (`fuzz/corpus/config_yaml`), so CI runs it
//! without cargo-fuzz; plus a few deterministic mutations of each input.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn config_yaml_corpus_and_mutations() {
    let seeds = replay("config_yaml", 8, edgevip_config::fuzz::config_yaml_one);
    assert!(seeds >= 5, "corpus has {seeds} seeds");
}
