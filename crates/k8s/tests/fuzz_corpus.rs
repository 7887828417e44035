//! The ConfigMap and VIPPool harnesses over their committed corpora
//! (`fuzz/corpus/configmap_compat`, `fuzz/corpus/configmap_rich`, `fuzz/corpus/vippool`),
//! so CI runs them without cargo-fuzz; plus a few deterministic mutations of each input.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn configmap_compat_corpus_and_mutations() {
    let seeds = replay(
        "configmap_compat",
        4,
        edgevip_k8s::fuzz::configmap_compat_one,
    );
    assert!(seeds >= 5, "corpus has {seeds} seeds");
}

#[test]
fn configmap_rich_corpus_and_mutations() {
    let seeds = replay("configmap_rich", 1, edgevip_k8s::fuzz::configmap_rich_one);
    assert!(seeds >= 5, "corpus has {seeds} seeds");
}

#[test]
fn vippool_corpus_and_mutations() {
    let seeds = replay("vippool", 8, edgevip_k8s::fuzz::vippool_one);
    assert!(seeds >= 5, "corpus has {seeds} seeds");
}
