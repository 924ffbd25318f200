//! The record-batch hot paths allocate a number of times that does not grow with the number of
//! records: encoding with a reused builder buffer and a reused `Compressor`, and decoding with a
//! reused `BatchDecoder` while touching every key and value.
//!
//! A counting global allocator needs `unsafe impl GlobalAlloc`, which the workspace's
//! `forbid(unsafe_code)` rules out even in tests; `stats_alloc` (a test-only dependency) is that
//! wrapper around `System`. Its counters are global, so this file holds a single test.
//!
//! What it cannot see: allocations made by C code through `malloc` (zstd's contexts), which
//! are reused across batches all the same.

use std::alloc::System;
use std::hint::black_box;

use bytes::BytesMut;
use kafka_core::codec::compression::{Compression, Compressor};
use kafka_core::codec::records::{BatchDecoder, BatchOptions, Header, RecordBatchBuilder};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations(region: &Region<'_, System>) -> usize {
    let change = region.change();
    change.allocations + change.reallocations
}

struct Counts {
    encode: usize,
    decode: usize,
}

/// Encodes and decodes one batch of `n` records a few times, and returns the allocation
/// counts of the last round (the first ones grow the reused buffers).
fn measure(
    n: usize,
    codec: Compression,
    builder: &mut RecordBatchBuilder,
    compressor: &mut Compressor,
    decoder: &mut BatchDecoder,
    with_headers: bool,
) -> Counts {
    let value = [0x5au8; 100];
    let opts = BatchOptions {
        compression: codec,
        ..BatchOptions::default()
    };
    let headers = [
        Header {
            key: b"trace-id",
            value: Some(b"0123456789abcdef"),
        },
        Header {
            key: b"null",
            value: None,
        },
    ];
    let headers: &[Header<'_>] = if with_headers { &headers } else { &[] };
    let mut last = Counts {
        encode: 0,
        decode: 0,
    };
    for _round in 0..3 {
        let region = Region::new(GLOBAL);
        builder.reset(opts);
        for i in 0..n {
            let key = (i as u64).to_be_bytes();
            builder
                .append(
                    1_700_000_000_000 + i as i64,
                    Some(&key),
                    Some(&value),
                    headers,
                )
                .unwrap();
        }
        let batch = builder.seal(compressor).unwrap();
        let encode = allocations(&region);

        let region = Region::new(GLOBAL);
        let mut touched = 0usize;
        let mut seen = 0usize;
        let mut batches = decoder.batches(batch);
        while let Some(b) = batches.next() {
            let b = b.unwrap();
            for r in b.records() {
                let r = r.unwrap();
                touched += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
                for h in r.headers() {
                    touched += h.unwrap().key.len();
                }
                seen += 1;
            }
            batches.recycle(b);
        }
        drop(batches);
        black_box(touched);
        let decode = allocations(&region);
        assert_eq!(seen, n);
        eprintln!(
            "n={n} {codec} enc={encode} dec={decode} cap={}",
            builder.estimated_size()
        );
        last = Counts { encode, decode };
    }
    last
}

#[test]
fn allocations_do_not_grow_with_record_count() {
    let mut report = Vec::new();
    for with_headers in [false, true] {
        for codec in Compression::ALL {
            // Fresh reusable state per codec, shared by both sizes, as a producer/consumer
            // keeps it.
            let mut builder =
                RecordBatchBuilder::with_buffer(BatchOptions::default(), BytesMut::new());
            let mut compressor = Compressor::new();
            let mut decoder = BatchDecoder::default();
            let small = measure(
                100,
                codec,
                &mut builder,
                &mut compressor,
                &mut decoder,
                with_headers,
            );
            let large = measure(
                10_000,
                codec,
                &mut builder,
                &mut compressor,
                &mut decoder,
                with_headers,
            );
            // The large run grew the buffers; run the small one again on the grown state.
            let small_again = measure(
                100,
                codec,
                &mut builder,
                &mut compressor,
                &mut decoder,
                with_headers,
            );
            report.push(format!(
                "{codec} headers={with_headers}: encode {}/{}/{}, decode {}/{}/{}",
                small.encode,
                large.encode,
                small_again.encode,
                small.decode,
                large.decode,
                small_again.decode
            ));
            let line = report.last().unwrap();
            // Encoding with warm buffers allocates nothing, whatever the record count.
            assert_eq!(
                (small.encode, large.encode, small_again.encode),
                (0, 0, 0),
                "{line}"
            );
            // Decoding allocates nothing per record. A compressed batch turns the pooled Vec
            // into `Bytes`: one allocation (the shared refcount), none when the Vec's length
            // happens to equal its capacity.
            let bound = usize::from(codec != Compression::None);
            assert!(
                large.decode <= bound && small_again.decode <= bound,
                "{line}"
            );
        }
    }
    println!("{}", report.join("\n"));
}
