//! Replays a committed fuzz corpus through its harness, for the crates' `fuzz_corpus*`
//! tests (included with `#[path]`), so CI runs every target without cargo-fuzz.

use std::path::Path;
use std::time::Instant;

/// Inputs above this are skipped: the fuzzer's are far smaller, and a debug build must
/// stay quick.
const MAX_INPUT: usize = 64 * 1024;

/// Runs `one` over every file of `fuzz/corpus/<target>` and, at `positions` evenly spread
/// offsets of each, the input with a bit flipped (bit 0 and bit 5: digits, case,
/// punctuation) and the input cut there. Returns the number of seeds.
pub fn replay(target: &str, positions: usize, one: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let started = Instant::now();
    let (mut seeds, mut runs) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if data.len() > MAX_INPUT {
            continue;
        }
        seeds += 1;
        let run = |d: &[u8]| {
            if std::panic::catch_unwind(|| one(d)).is_err() {
                panic!(
                    "{target}: {} (or a mutation of it, {} bytes)",
                    path.display(),
                    d.len()
                );
            }
        };
        run(&data);
        let step = data.len().div_ceil(positions).max(1);
        for i in (0..data.len()).step_by(step) {
            for bit in [0, 5] {
                let mut m = data.clone();
                m[i] ^= 1 << bit;
                run(&m);
            }
            run(&data[..i]);
            runs += 3;
        }
    }
    println!(
        "{target}: {seeds} seeds, {runs} mutations, {:?}",
        started.elapsed()
    );
    seeds
}
