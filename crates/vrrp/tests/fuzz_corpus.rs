//! The fuzz harness over the committed corpus, so CI exercises it without cargo-fuzz; plus
//! mutations of each seed (every byte flipped, every length truncated).

use std::path::Path;

#[test]
fn corpus_and_its_mutations_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decode");
    let mut seeds = 0;
    let mut runs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        seeds += 1;
        vrrp::fuzz::decode_one(&data);
        for i in 0..data.len() {
            for bit in 0..8 {
                let mut m = data.clone();
                m[i] ^= 1 << bit;
                vrrp::fuzz::decode_one(&m);
                runs += 1;
            }
            vrrp::fuzz::decode_one(&data[..i]);
        }
    }
    assert!(seeds >= 5, "corpus has {seeds} seeds");
    println!("fuzz corpus: {seeds} seeds, {runs} mutations");
}
