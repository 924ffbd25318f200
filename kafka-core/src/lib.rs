//! `kafka-core`: the foundation of the workspace.
//!
//! * [`codec`] is sans-IO: bytes in, typed values out, and back. Frames, request and response
//!   headers, message bodies (through the `kafka-protocol` schemas, guarded against hostile
//!   input), record batches and compression.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;

pub use error::{CodecError, Result};
