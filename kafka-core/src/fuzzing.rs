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

/// Reads `data` as the `records` field of a fetch response and touches every part of every
/// record. The first byte picks a mode: raw bytes with CRC checks on or off, or the rest of
/// the input wrapped as the (compressed) records section of a well-formed magic 2 batch with a
/// correct CRC, so the fuzzer reaches each codec's decompressor and the record parser. Also checks
/// our CRC-32C against the reference crate on the whole input.
pub fn record_batches(data: &[u8]) {
    use crate::codec::compression::Compression;
    use crate::codec::records::BatchDecoder;

    // Our CRC-32C (a hybrid with `unsafe` SIMD where the CPU has it) agrees with the
    // reference crate on every input; the hybrid is called directly from 544 bytes on.
    let reference = crate::codec::crc::crc32c_reference(data);
    assert_eq!(crate::codec::crc::crc32c(data), reference);
    if let Some(hybrid) = crate::codec::crc::crc32c_hybrid(data) {
        assert_eq!(hybrid, reference);
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // A small cap, so bombs are refused quickly and the fuzzer stays fast.
    let mut decoder = BatchDecoder::new(1 << 20).verify_crc(mode & 0x80 == 0);
    let records = match mode & 0x07 {
        id @ 0..=4 => {
            let codec = Compression::from_id(id).unwrap();
            let count = rest.first().copied().unwrap_or(0) as i32;
            Bytes::from(wrap_in_batch(codec, count, rest.get(1..).unwrap_or(&[])))
        }
        _ => Bytes::copy_from_slice(rest),
    };
    let mut total = 0usize;
    for batch in decoder.batches(records) {
        let Ok(batch) = batch else { break };
        let _ = batch.control_record();
        for record in batch.records() {
            let Ok(record) = record else { break };
            total += record.key().map_or(0, <[u8]>::len) + record.value().map_or(0, <[u8]>::len);
            for header in record.headers() {
                let Ok(h) = header else { break };
                total += h.key.len();
            }
        }
    }
    std::hint::black_box(total);
}

/// Builds a magic 2 batch around `section` (taken as the already compressed records section),
/// with a correct length and CRC32C.
fn wrap_in_batch(
    codec: crate::codec::compression::Compression,
    count: i32,
    section: &[u8],
) -> Vec<u8> {
    use bytes::BufMut;
    let mut b = Vec::with_capacity(61 + section.len());
    b.put_i64(0); // base offset
    b.put_i32((49 + section.len()) as i32); // batch length
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, patched below
    b.put_i16(i16::from(codec.id()));
    b.put_i32(count.saturating_sub(1).max(0)); // last offset delta
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(section);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Builds a batch from records derived from `data` in the codec its first byte picks, decodes
/// it, and checks every field comes back exactly.
pub fn record_roundtrip(data: &[u8]) {
    use crate::codec::compression::{Compression, Compressor};
    use crate::codec::records::{BatchDecoder, BatchOptions, Header, RecordBatchBuilder};

    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let codec = Compression::ALL[selector as usize % 5];
    // Records: [flags][len][bytes...] repeated; flags pick null key/value and a header.
    struct Rec<'a> {
        ts: i64,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        header: Option<&'a [u8]>,
    }
    let mut recs = Vec::new();
    while let [flags, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (part, tail) = tail.split_at(n);
        let (k, v) = part.split_at(n / 3);
        recs.push(Rec {
            ts: 1_700_000_000_000 + i64::from(*flags) * 1000 - 100_000,
            key: (flags & 1 == 0).then_some(k),
            value: (flags & 2 == 0).then_some(v),
            header: (flags & 4 != 0).then_some(k),
        });
        rest = tail;
    }
    let mut builder = RecordBatchBuilder::new(BatchOptions {
        compression: codec,
        producer_id: 7,
        producer_epoch: 1,
        base_sequence: 42,
        ..BatchOptions::default()
    });
    for r in &recs {
        let headers: Vec<Header<'_>> = r
            .header
            .map(|h| Header {
                key: h,
                value: Some(h),
            })
            .into_iter()
            .collect();
        builder.append(r.ts, r.key, r.value, &headers).unwrap();
    }
    let batch = builder.seal(&mut Compressor::new()).unwrap();
    let mut decoder = BatchDecoder::new(64 << 20);
    let mut batches = decoder.batches(batch);
    let got = batches.next().expect("one batch").expect("valid batch");
    assert!(batches.next().is_none());
    assert_eq!(got.compression(), codec);
    assert_eq!(got.record_count(), recs.len());
    let mut n = 0;
    for (view, want) in got.records().zip(&recs) {
        let view = view.unwrap();
        assert_eq!(view.offset(), n as i64);
        assert_eq!(view.timestamp(), want.ts);
        assert_eq!(view.key(), want.key);
        assert_eq!(view.value(), want.value);
        let headers: Vec<_> = view.headers().map(|h| h.unwrap()).collect();
        assert_eq!(headers.len(), usize::from(want.header.is_some()));
        if let (Some(h), Some(w)) = (headers.first(), want.header) {
            assert_eq!((h.key, h.value), (w, Some(w)));
        }
        n += 1;
    }
    assert_eq!(n, recs.len());
}
