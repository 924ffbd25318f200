//! `kafka-core`: the foundation of the workspace.
//!
//! * [`codec`] is sans-IO: bytes in, typed values out, and back. Frames, request and response
//!   headers, message bodies (through the `kafka-protocol` schemas, guarded against hostile
//!   input), record batches and compression.
//! * [`kafka_error`]: Kafka's error codes ([`KafkaCode`]) and the one retriability rule.
//! * [`client`]: the cluster view ([`Client`]): bootstrap, metadata, routing, connection pool,
//!   coordinator lookup, retries, and the raw request escape hatch.
#![deny(unsafe_code)] // allowed in codec::crc alone (see DESIGN.md, "unsafe")
#![deny(missing_docs)]

pub mod client;
pub mod codec;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka_error;
pub mod net;

pub use client::{Client, ClientConfig};
pub use error::{CodecError, Result};
pub use kafka_error::KafkaCode;
/// The `kafka-protocol` crate this crate speaks, for the raw request escape hatch
/// ([`Client::send_to`]): build requests with the same version of the message types.
pub use kafka_protocol as protocol;
