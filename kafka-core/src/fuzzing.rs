//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the corpus replay test
//! (`kafka-core/tests/fuzz_corpus.rs`), so that an ordinary `cargo test` re-runs every input
//! the fuzzers ever kept, on the stable toolchain.
//!
//! Each function must return normally for *every* input: a panic, an abort or a huge
//! allocation is the bug a fuzzer reports. They also assert the codec's own invariants.

use bytes::{Bytes, BytesMut};

use crate::codec::frame::FrameDecoder;
use crate::codec::message::decode_response_kind;
use crate::codec::schema::{response_schemas, validate_response_body};

/// Feeds `data` to a [`FrameDecoder`] in chunks whose sizes come from the data itself, and
/// checks that frames come out whole and in order, whatever the chunking.
pub fn frame_decoder(data: &[u8]) {
    let Some((&max_selector, data)) = data.split_first() else {
        return;
    };
    let max = 1usize << (max_selector % 24);
    // Reference: the whole input at once.
    let mut whole = BytesMut::from(data);
    let mut reference = Vec::new();
    let mut d = FrameDecoder::new(max);
    let reference_err = loop {
        match d.decode(&mut whole) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= max);
                reference.push(frame);
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    // The same bytes one to seven at a time must give the same frames and the same verdict.
    let mut src = BytesMut::new();
    let mut got = Vec::new();
    let mut d = FrameDecoder::new(max);
    let mut rest = data;
    let mut err = None;
    let mut step = 1;
    'feed: while !rest.is_empty() {
        let n = step.min(rest.len());
        src.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        step = step % 7 + 1;
        loop {
            match d.decode(&mut src) {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'feed;
                }
            }
        }
        // Never reserve more than one frame's worth beyond what is buffered.
        assert!(src.capacity() <= src.len() + max + 4 + 64 || src.len() > max);
    }
    assert_eq!(got, reference);
    assert_eq!(err, reference_err);
}

/// Decodes `data` as a response of an API and version chosen by its first two bytes; the rest
/// is the frame (correlation id, header, body). Must never panic or over-allocate.
pub fn response(data: &[u8]) {
    let [a, v, frame @ ..] = data else {
        return;
    };
    let schemas = response_schemas();
    let schema = &schemas[*a as usize % schemas.len()];
    let span = (schema.valid.1 - schema.valid.0 + 1) as u16;
    let version = schema.valid.0 + (*v as u16 % span) as i16;
    if kafka_protocol::messages::ApiKey::try_from(schema.api_key).is_err() {
        return;
    }
    let _ = decode_response_kind(schema.api_key, version, Bytes::copy_from_slice(frame));
    // The same bytes as a bare body: when the walker accepts them, kafka-protocol's decoder
    // runs on them too (that is where an unchecked array count would abort).
    if validate_response_body(schema.api_key, version, frame).is_ok() {
        let key = kafka_protocol::messages::ApiKey::try_from(schema.api_key).unwrap();
        let mut body = Bytes::copy_from_slice(frame);
        let _ = kafka_protocol::messages::ResponseKind::decode(key, &mut body, version);
    }
}
