//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/*`) through the same entry points
//! the cargo-fuzz targets use, so CI catches regressions on the stable toolchain.

use std::path::PathBuf;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        f(&data);
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn frame_decoder_corpus() {
    replay("frame_decoder", kafka_core::fuzzing::frame_decoder);
}

#[test]
fn response_corpus() {
    replay("response", kafka_core::fuzzing::response);
}

#[test]
fn record_batches_corpus() {
    replay("record_batches", kafka_core::fuzzing::record_batches);
}

#[test]
fn record_roundtrip_corpus() {
    replay("record_roundtrip", kafka_core::fuzzing::record_roundtrip);
}
