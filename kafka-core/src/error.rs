//! The codec layer's one error type.

/// Result alias for the codec layer.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

/// Everything that can go wrong turning bytes into typed values and back.
///
/// Every variant is a clear, typed refusal of bad input: the codec never panics, aborts or
/// allocates without bound on anything a broker (or an attacker posing as one) can send.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// A frame declared a negative size.
    #[error("frame size {size} is negative")]
    NegativeFrameSize {
        /// The size read off the wire.
        size: i32,
    },
    /// A frame declared a size above the configured maximum (`receive.message.max.bytes`).
    /// Reading TLS bytes on a plaintext connection typically ends here (0x15030300 = 352 MB).
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The size read off the wire.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The input ended before a complete value was read.
    #[error("truncated input: needed {needed} more bytes while reading {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// How many more bytes were needed (at least).
        needed: usize,
    },
    /// A length or count on the wire is impossible (negative where not allowed, or larger than
    /// the bytes that remain).
    #[error("invalid length {len} for {what} ({remaining} bytes remain)")]
    InvalidLength {
        /// What carried the length.
        what: &'static str,
        /// The length read off the wire.
        len: i64,
        /// Bytes remaining in the enclosing buffer.
        remaining: usize,
    },
    /// A variable-length integer ran past its maximum width.
    #[error("malformed varint while reading {what}")]
    MalformedVarint {
        /// What was being read.
        what: &'static str,
    },
    /// The API key is not one this client knows.
    #[error("unknown api key {api_key}")]
    UnknownApiKey {
        /// The key.
        api_key: i16,
    },
    /// The API version is outside the range the schemas support.
    #[error("api key {api_key} ({name}) has no version {version}")]
    UnsupportedVersion {
        /// The key.
        api_key: i16,
        /// The API's name.
        name: &'static str,
        /// The requested version.
        version: i16,
    },
    /// A response carried a correlation id other than the one expected.
    #[error("correlation id mismatch: expected {expected}, got {actual}")]
    CorrelationMismatch {
        /// The id of the request in flight.
        expected: i32,
        /// The id the response carried.
        actual: i32,
    },
    /// A message body had bytes left over after decoding.
    #[error("{api} v{version}: {trailing} trailing bytes after the message")]
    TrailingBytes {
        /// The API's name.
        api: &'static str,
        /// Its version.
        version: i16,
        /// How many bytes were left.
        trailing: usize,
    },
    /// A structurally valid message that `kafka-protocol` still refused (bad UTF-8, say).
    #[error("{api} v{version}: {message}")]
    Malformed {
        /// The API's name.
        api: &'static str,
        /// Its version.
        version: i16,
        /// What went wrong.
        message: String,
    },
    /// Encoding a message failed (a value out of range for its wire type, say).
    #[error("encoding {api} v{version} failed: {message}")]
    Encode {
        /// The API's name.
        api: &'static str,
        /// Its version.
        version: i16,
        /// What went wrong.
        message: String,
    },
    /// A record batch had an unsupported magic byte.
    #[error("unsupported record batch magic {magic}")]
    UnsupportedMagic {
        /// The magic read off the wire.
        magic: i8,
    },
    /// A record batch failed its CRC check.
    #[error("record batch CRC mismatch at base offset {base_offset}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The batch's base offset.
        base_offset: i64,
        /// The CRC stored in the batch.
        stored: u32,
        /// The CRC computed over the bytes.
        computed: u32,
    },
    /// A record batch or record is internally inconsistent.
    #[error("corrupt record batch at base offset {base_offset}: {reason}")]
    CorruptBatch {
        /// The batch's base offset.
        base_offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// The compression attribute names a codec that does not exist.
    #[error("unknown compression codec id {id}")]
    UnknownCompression {
        /// The 3-bit codec id.
        id: u8,
    },
    /// Compressing or decompressing failed.
    #[error("{codec} {op} failed: {reason}")]
    Compression {
        /// The codec's name.
        codec: &'static str,
        /// "compress" or "decompress".
        op: &'static str,
        /// What the codec said.
        reason: String,
    },
    /// Decompressed data exceeded the configured cap (a decompression bomb, or a cap too low).
    #[error("{codec}: decompressed size exceeds the cap of {cap} bytes")]
    DecompressedTooLarge {
        /// The codec's name.
        codec: &'static str,
        /// The cap.
        cap: usize,
    },
    /// A value is too large for the field that carries it (a record over 2 GiB, say).
    #[error("{what} is too large to encode: {len} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
    },
}

impl CodecError {
    /// Whether the error is about bytes received off the wire (a garbled or cut frame, a
    /// corrupt batch), as opposed to a request that cannot be encoded, an unknown API or an
    /// unsupported version. Only the former may go away on a new connection: the latter fail
    /// the same way every time, so retrying them only burns the caller's deadline.
    pub fn is_wire_corruption(&self) -> bool {
        !matches!(
            self,
            CodecError::Encode { .. }
                | CodecError::TooLarge { .. }
                | CodecError::UnknownApiKey { .. }
                | CodecError::UnsupportedVersion { .. }
                | CodecError::UnknownCompression { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_received_bytes_count_as_wire_corruption() {
        assert!(CodecError::NegativeFrameSize { size: -1 }.is_wire_corruption());
        assert!(CodecError::CorrelationMismatch {
            expected: 1,
            actual: 2
        }
        .is_wire_corruption());
        assert!(CodecError::Truncated {
            what: "x",
            needed: 1
        }
        .is_wire_corruption());
        let encode = CodecError::Encode {
            api: "DescribeCluster",
            version: 1,
            message: "A field is set that is not available on the selected protocol version".into(),
        };
        assert!(!encode.is_wire_corruption());
        assert!(!CodecError::UnknownApiKey { api_key: 999 }.is_wire_corruption());
        assert!(!CodecError::TooLarge {
            what: "request",
            len: 1 << 31
        }
        .is_wire_corruption());
    }
}
