//! The sans-IO codec: bytes in, typed values out, and back. No sockets, clocks or tasks.
//!
//! * [`frame`]: length-prefixed frames (`tokio_util::codec::Decoder` contract).
//! * [`message`]: request encoding and response decoding for every API and version.
//! * [`schema`]: the response walker that keeps hostile input away from `kafka-protocol`.
//! * [`varint`]: Kafka's varints.
//! * [`compression`]: record-batch compression codecs.
//! * [`crc`]: CRC-32C, the record-batch checksum (the crate's one module with `unsafe`).
//! * [`records`]: record batches (magic 2) and legacy message sets (magic 0 and 1).

pub mod compression;
pub mod crc;
pub mod frame;
pub mod message;
pub mod records;
pub mod schema;
pub mod varint;
