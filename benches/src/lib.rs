//! Benchmark support code shared by the bench targets and the `live` binary.
//!
//! [`live`] is the library behind `src/bin/live.rs`: produce and consume runs against a
//! live broker, with our clients and the peer clients (feature `peers`) behind one pair of
//! traits, and the `compare` mode that runs them alternately in child processes.

#![forbid(unsafe_code)]

pub mod live;
