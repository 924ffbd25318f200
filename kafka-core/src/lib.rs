//! `kafka-core`: the foundation of the workspace.
//!
//! * [`codec`] is sans-IO: bytes in, typed values out, and back. Frames, request and response
//!   headers, message bodies (through the `kafka-protocol` schemas, guarded against hostile
//!   input), record batches and compression.
//! * [`kafka_error`]: Kafka's error codes ([`KafkaCode`]) and the one retriability rule.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod codec;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka_error;
pub mod net;

pub use error::{CodecError, Result};
pub use kafka_error::KafkaCode;
