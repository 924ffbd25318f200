//! `live`: produce and consume runs against a live Kafka broker, one JSON object per run.
//!
//! * [`args`] parses the command line (`live produce|consume|compare ...`).
//! * [`setup`] finds or starts the broker, creates the topic and counts what it holds,
//!   through `kafka-core`'s [`Client`](kafka_core::Client) (no peer client needed).
//! * [`measure`] reads process CPU time and peak RSS from `/proc/self`, and keeps the ack
//!   latencies.
//! * [`driver`] runs one client through the [`LiveProducer`](driver::LiveProducer) or
//!   [`LiveConsumer`](driver::LiveConsumer) trait: connect and warm up (not measured), then
//!   the measured part, then the report.
//! * [`clients`] holds one small module per client; the peers only with the `peers` feature.
//! * [`compare`] runs clients alternately, each run in a child process of this binary (so
//!   CPU time and peak RSS belong to one client), and prints ratios against rdkafka.
//! * [`report`] writes and reads the flat JSON objects.
//!
//! See `benches/DESIGN-live.md` for the decisions and `benches/README.md` for figures.

pub mod args;
pub mod clients;
pub mod compare;
pub mod driver;
pub mod error;
pub mod measure;
pub mod report;
pub mod setup;

#[cfg(test)]
mod tests;

pub use error::LiveError;
