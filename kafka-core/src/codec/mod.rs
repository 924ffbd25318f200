//! The sans-IO codec: bytes in, typed values out, and back. No sockets, clocks or tasks.
//!
//! * [`frame`]: length-prefixed frames (`tokio_util::codec::Decoder` contract).
//! * [`varint`]: Kafka's varints.

pub mod frame;
pub mod varint;
