//! Benchmark support code shared by the bench targets and the `live` binary.
