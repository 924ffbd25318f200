//! Length-prefixed frames: a big-endian `INT32` size, then that many bytes.
//!
//! [`FrameDecoder::decode`] follows the `tokio_util::codec::Decoder` contract: `Ok(None)` while
//! a frame is incomplete, `Ok(Some(frame))` once it is whole, `Err` on a size that can never be
//! valid. The size is checked against the configured maximum before anything is reserved, so a
//! hostile or misdirected peer (a TLS server answering a plaintext client, say) cannot make the
//! reader allocate gigabytes.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{CodecError, Result};

/// Default cap on a received frame: librdkafka's `receive.message.max.bytes` default (100 MB).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100_000_000;

/// Splits a byte stream into frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `max_frame_size` bytes (not counting the
    /// four-byte size prefix).
    pub fn new(max_frame_size: usize) -> Self {
        Self { max_frame_size }
    }

    /// The configured maximum frame size.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Takes one whole frame (without its size prefix) off the front of `src`.
    ///
    /// Returns `Ok(None)` when `src` does not yet hold a whole frame; in that case it reserves
    /// room for the rest of the frame (bounded by the maximum), so the caller's next read can
    /// fill it.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>> {
        let Some(size) = self.peek_size(src)? else {
            return Ok(None);
        };
        let total = 4 + size;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(size).freeze()))
    }

    /// Reads and validates the size prefix without consuming anything.
    pub fn peek_size(&self, src: &[u8]) -> Result<Option<usize>> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if size < 0 {
            return Err(CodecError::NegativeFrameSize { size });
        }
        let size = size as usize;
        if size > self.max_frame_size {
            return Err(CodecError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        Ok(Some(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_then_complete() {
        let mut d = FrameDecoder::new(64);
        let mut buf = BytesMut::new();
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[0, 0, 0]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[3, b'a', b'b']);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() >= 7);
        buf.extend_from_slice(b"c\x00\x00\x00\x00rest");
        assert_eq!(d.decode(&mut buf).unwrap().as_deref(), Some(&b"abc"[..]));
        // An empty frame is valid.
        assert_eq!(d.decode(&mut buf).unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn rejects_negative_and_oversized_before_allocating() {
        let mut d = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(CodecError::NegativeFrameSize { size: -2 })
        );
        // A TLS alert/handshake read as a frame size: 0x15030300.
        let mut buf = BytesMut::from(&[0x15, 0x03, 0x03, 0x00, 0x02][..]);
        let cap_before = buf.capacity();
        assert!(matches!(
            d.decode(&mut buf),
            Err(CodecError::FrameTooLarge {
                size: 0x1503_0300,
                max: 1024
            })
        ));
        assert_eq!(
            buf.capacity(),
            cap_before,
            "nothing reserved for a refused frame"
        );
    }
}
