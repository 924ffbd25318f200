//! Round trips, known answers and hostile input for record batches.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::codec::compression::{Compression, Compressor};

/// An owned record, as a test writes it and expects it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TestRecord {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl TestRecord {
    /// The headers as the builder takes them.
    pub(super) fn header_refs(&self) -> Vec<Header<'_>> {
        self.headers
            .iter()
            .map(|(k, v)| Header {
                key: k,
                value: v.as_deref(),
            })
            .collect()
    }
}

pub(super) fn build(
    opts: BatchOptions,
    records: &[TestRecord],
    compressor: &mut Compressor,
) -> Bytes {
    let mut b = RecordBatchBuilder::new(opts);
    for r in records {
        let headers = r.header_refs();
        let before = b.estimated_size();
        let predicted =
            b.estimated_size_with(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
        b.append(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers)
            .unwrap();
        assert!(b.estimated_size() > before);
        assert_eq!(b.estimated_size(), predicted);
    }
    assert_eq!(b.record_count(), records.len());
    b.seal(compressor).unwrap()
}

/// Decodes every record of every batch into owned form.
pub(super) fn decode_all(data: Bytes) -> Vec<(BatchHeader, Vec<(i64, TestRecord)>)> {
    let mut dec = BatchDecoder::new(1 << 24);
    let mut out = Vec::new();
    let mut batches = dec.batches(data);
    while let Some(batch) = batches.next() {
        let batch = batch.unwrap();
        let records = batch
            .records()
            .map(|r| {
                let r = r.unwrap();
                let headers = r
                    .headers()
                    .map(|h| {
                        let h = h.unwrap();
                        (h.key.to_vec(), h.value.map(<[u8]>::to_vec))
                    })
                    .collect::<Vec<_>>();
                assert_eq!(headers.len(), r.header_count());
                (
                    r.offset(),
                    TestRecord {
                        timestamp: r.timestamp(),
                        key: r.key().map(<[u8]>::to_vec),
                        value: r.value().map(<[u8]>::to_vec),
                        headers,
                    },
                )
            })
            .collect();
        out.push((*batch.header(), records));
        batches.recycle(batch);
    }
    assert_eq!(batches.truncated_tail(), 0);
    out
}

fn bytes_opt(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        6 => proptest::collection::vec(any::<u8>(), 0..max).prop_map(Some),
    ]
}

fn record_strategy(large: bool) -> impl Strategy<Value = TestRecord> {
    let value_max = if large { 64 * 1024 } else { 200 };
    (
        prop_oneof![any::<i64>(), 1_600_000_000_000i64..1_800_000_000_000],
        bytes_opt(40),
        bytes_opt(value_max),
        proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..12), bytes_opt(20)),
            0..4,
        ),
    )
        .prop_map(|(timestamp, key, value, headers)| TestRecord {
            timestamp,
            key,
            value,
            headers,
        })
}

pub(super) fn records_strategy() -> impl Strategy<Value = Vec<TestRecord>> {
    prop_oneof![
        4 => proptest::collection::vec(record_strategy(false), 0..60),
        1 => proptest::collection::vec(record_strategy(true), 1..4),
    ]
}

fn options_strategy() -> impl Strategy<Value = BatchOptions> {
    (
        0i64..i64::MAX / 2,
        0u8..5,
        any::<bool>(),
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
        any::<bool>(),
        any::<i32>(),
    )
        .prop_map(
            |(base_offset, codec, log_append, pid, epoch, seq, txn, ple)| BatchOptions {
                base_offset,
                compression: Compression::from_id(codec).unwrap(),
                compression_level: None,
                timestamp_type: if log_append {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                producer_id: pid,
                producer_epoch: epoch,
                base_sequence: seq,
                transactional: txn,
                control: false,
                partition_leader_epoch: ple,
            },
        )
}

fn check_roundtrip(opts: BatchOptions, records: &[TestRecord], compressor: &mut Compressor) {
    let batch = build(opts, records, compressor);
    let decoded = decode_all(batch.clone());
    assert_eq!(decoded.len(), 1);
    let (h, got) = &decoded[0];
    assert_eq!(h.base_offset, opts.base_offset);
    assert_eq!(h.batch_length as usize, batch.len() - LOG_OVERHEAD);
    assert_eq!(h.magic, 2);
    assert_eq!(h.compression().unwrap(), opts.compression);
    assert_eq!(h.timestamp_type(), opts.timestamp_type);
    assert_eq!(h.is_transactional(), opts.transactional);
    assert!(!h.is_control());
    assert_eq!(h.producer_id, opts.producer_id);
    assert_eq!(h.producer_epoch, opts.producer_epoch);
    assert_eq!(h.base_sequence, opts.base_sequence);
    assert_eq!(h.partition_leader_epoch, opts.partition_leader_epoch);
    assert_eq!(h.record_count as usize, records.len());
    let max_ts = records.iter().map(|r| r.timestamp).max();
    if let Some(max_ts) = max_ts {
        assert_eq!(h.max_timestamp, max_ts);
        assert_eq!(h.base_timestamp, records[0].timestamp);
        assert_eq!(h.last_offset(), opts.base_offset + records.len() as i64 - 1);
    }
    assert_eq!(got.len(), records.len());
    for (i, ((offset, got), want)) in got.iter().zip(records).enumerate() {
        assert_eq!(*offset, opts.base_offset + i as i64);
        let mut want = want.clone();
        if opts.timestamp_type == TimestampType::LogAppendTime {
            want.timestamp = max_ts.unwrap();
        }
        assert_eq!(got, &want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn roundtrip_every_codec(opts in options_strategy(), records in records_strategy()) {
        let mut c = Compressor::new();
        check_roundtrip(opts, &records, &mut c);
    }

    #[test]
    fn control_batches_roundtrip(
        commit in any::<bool>(),
        epoch in any::<i32>(),
        pid in 0i64..i64::MAX,
        producer_epoch in 0i16..i16::MAX,
        ts in any::<i64>(),
        base_offset in 0i64..i64::MAX / 2,
    ) {
        let marker = ControlRecord {
            kind: if commit { ControlRecordKind::Commit } else { ControlRecordKind::Abort },
            coordinator_epoch: epoch,
        };
        let opts = BatchOptions {
            base_offset,
            producer_id: pid,
            producer_epoch,
            compression: Compression::Zstd, // ignored: markers are never compressed
            ..BatchOptions::default()
        };
        let bytes = RecordBatchBuilder::control_batch(opts, marker, ts).unwrap();
        let mut dec = BatchDecoder::default();
        let batches: Vec<_> = dec.batches(bytes).collect::<Result<_>>().unwrap();
        prop_assert_eq!(batches.len(), 1);
        let b = &batches[0];
        prop_assert!(b.is_control());
        prop_assert!(b.is_transactional());
        prop_assert_eq!(b.compression(), Compression::None);
        prop_assert_eq!(b.header().producer_id, pid);
        prop_assert_eq!(b.control_record().unwrap(), Some(marker));
        let r = b.records().next().unwrap().unwrap();
        prop_assert_eq!(r.offset(), base_offset);
        prop_assert_eq!(r.timestamp(), ts);
    }

    /// Whatever the bytes, decoding ends in records or an error: no panic, no runaway
    /// allocation.
    #[test]
    fn arbitrary_mutations_never_panic(
        records in proptest::collection::vec(record_strategy(false), 1..8),
        codec in 0u8..5,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        verify in any::<bool>(),
    ) {
        let opts = BatchOptions { compression: Compression::from_id(codec).unwrap(), ..Default::default() };
        let batch = build(opts, &records, &mut Compressor::new());
        let mut bytes = batch.to_vec();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        bytes.truncate(cut.index(bytes.len() + 1).max(bytes.len() / 2));
        let mut dec = BatchDecoder::new(1 << 16).verify_crc(verify);
        for batch in dec.batches(Bytes::from(bytes)) {
            let Ok(batch) = batch else { break };
            for r in batch.records() {
                let Ok(r) = r else { break };
                for h in r.headers() {
                    if h.is_err() { break }
                }
            }
            let _ = batch.control_record();
        }
    }
}

/// Every size where the builder changes how it writes a field: the length varint's second
/// byte (64), the inline copies (8, 16, 32, 64, 128 bytes), the small-record window (keys and
/// values up to 128 bytes), two-byte varints (under 8 KiB) and header counts from 64 on.
#[test]
fn field_size_boundaries_roundtrip() {
    const SIZES: [usize; 17] = [
        0, 1, 3, 4, 7, 8, 15, 16, 17, 33, 63, 64, 65, 127, 128, 129, 8192,
    ];
    let field =
        |n: usize, seed: usize| -> Vec<u8> { (0..n).map(|i| (i * 31 + seed) as u8).collect() };
    let mut records = Vec::new();
    for (i, &k) in SIZES.iter().enumerate() {
        for &v in &SIZES {
            let headers = match (k + v) % 3 {
                0 => Vec::new(),
                1 => vec![(field(k % 70, 1), Some(field(v, 2))), (Vec::new(), None)],
                _ => (0..64 + i % 3)
                    .map(|h| (field(h % 9, h), Some(field(h % 5, h))))
                    .collect(),
            };
            records.push(TestRecord {
                timestamp: 1_700_000_000_000 + (k * 1000 + v) as i64,
                key: Some(field(k, 3)),
                value: Some(field(v, 4)),
                headers,
            });
        }
    }
    check_roundtrip(BatchOptions::default(), &records, &mut Compressor::new());
    // The same records, smallest first, through one builder twice: the second batch is
    // built in the first one's allocation, taken back once it was dropped.
    records
        .sort_by_key(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len));
    let mut b = RecordBatchBuilder::new(BatchOptions::default());
    let mut c = Compressor::new();
    for _ in 0..2 {
        for r in &records {
            b.append(
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                &r.header_refs(),
            )
            .unwrap();
        }
        let batch = b.seal(&mut c).unwrap();
        let decoded = decode_all(batch);
        let got: Vec<TestRecord> = decoded[0].1.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(got, records);
    }
}

#[test]
fn crc32c_known_answer() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

/// One record written out byte by byte from the protocol guide's layout.
fn hand_written_batch() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // baseOffset 0
    b.extend_from_slice(&[0, 0, 0, 62]); // batchLength: 49 header bytes after it + 13 record bytes
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // partitionLeaderEpoch -1
    b.push(2); // magic
    b.extend_from_slice(&[0, 0, 0, 0]); // crc, filled in below
    b.extend_from_slice(&[0, 0]); // attributes: no codec, CreateTime, not txn, not control
    b.extend_from_slice(&[0, 0, 0, 0]); // lastOffsetDelta 0
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // baseTimestamp 1000
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // maxTimestamp 1000
    b.extend_from_slice(&[0xff; 8]); // producerId -1
    b.extend_from_slice(&[0xff, 0xff]); // producerEpoch -1
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // baseSequence -1
    b.extend_from_slice(&[0, 0, 0, 1]); // recordCount 1
                                        // The record.
    b.push(0x18); // length: varint 12 (zig-zag 24)
    b.push(0); // attributes
    b.push(0); // timestampDelta: varlong 0
    b.push(0); // offsetDelta: varint 0
    b.push(0x02); // keyLength: varint 1
    b.push(b'k'); // key
    b.push(0x0a); // valueLength: varint 5
    b.extend_from_slice(b"hello"); // value
    b.push(0); // headerCount 0
    assert_eq!(b.len(), 12 + 62);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn known_answer_batch() {
    let expected = hand_written_batch();
    let mut b = RecordBatchBuilder::new(BatchOptions::default());
    b.append(1000, Some(b"k"), Some(b"hello"), &[]).unwrap();
    assert_eq!(b.estimated_size(), expected.len());
    let ours = b.seal(&mut Compressor::new()).unwrap();
    assert_eq!(&ours[..], &expected[..]);

    let mut dec = BatchDecoder::default();
    let mut it = dec.batches(Bytes::from(expected));
    let batch = it.next().unwrap().unwrap();
    assert!(it.next().is_none());
    assert_eq!(batch.base_offset(), 0);
    assert_eq!(batch.last_offset(), 0);
    let r = batch.records().next().unwrap().unwrap();
    assert_eq!((r.offset(), r.timestamp()), (0, 1000));
    assert_eq!(r.key(), Some(&b"k"[..]));
    assert_eq!(r.value(), Some(&b"hello"[..]));
    assert_eq!(r.headers().count(), 0);
}

#[test]
fn header_known_answer() {
    let mut b = RecordBatchBuilder::new(BatchOptions::default());
    let headers = [Header {
        key: b"h",
        value: None,
    }];
    b.append(5, None, Some(b""), &headers).unwrap();
    let batch = b.seal(&mut Compressor::new()).unwrap();
    // length 7: attributes, ts delta, offset delta, key -1, value len 0, count 1,
    // header key len 1, 'h', header value -1.
    assert_eq!(
        &batch[61..],
        &[0x12, 0, 0, 0, 0x01, 0x00, 0x02, 0x02, b'h', 0x01]
    );
}

#[test]
fn values_are_zero_copy_slices() {
    let mut c = Compressor::new();
    let recs = vec![TestRecord {
        timestamp: 1,
        key: Some(b"key".to_vec()),
        value: Some(vec![7; 1000]),
        headers: vec![(b"hk".to_vec(), Some(b"hv".to_vec()))],
    }];
    for codec in Compression::ALL {
        let batch = build(
            BatchOptions {
                compression: codec,
                ..Default::default()
            },
            &recs,
            &mut c,
        );
        let mut dec = BatchDecoder::default();
        let b = dec.batches(batch.clone()).next().unwrap().unwrap();
        let r = b.records().next().unwrap().unwrap();
        let v = r.value_bytes().unwrap();
        assert_eq!(v.len(), 1000);
        let owner = if codec == Compression::None {
            batch.as_ptr_range()
        } else {
            b.records_bytes().as_ptr_range()
        };
        assert!(
            owner.contains(&v.as_ptr()),
            "{codec}: value shares the buffer"
        );
        let h = r.headers().next().unwrap().unwrap();
        let hv = r.bytes_of(h.value.unwrap());
        assert_eq!(&hv[..], b"hv");
        assert!(owner.contains(&hv.as_ptr()));
        assert_eq!(&r.key_bytes().unwrap()[..], b"key");
        // Data from elsewhere is copied, not mis-sliced.
        assert_eq!(&r.bytes_of(b"elsewhere")[..], b"elsewhere");
    }
}

#[test]
fn builder_reuses_its_allocation_once_batches_are_dropped() {
    let mut c = Compressor::new();
    let mut b =
        RecordBatchBuilder::with_buffer(BatchOptions::default(), BytesMut::with_capacity(4096));
    let mut range = None;
    for i in 0..200u8 {
        b.append(1, Some(b"k"), Some(&[i; 100]), &[]).unwrap();
        let batch = b.seal(&mut c).unwrap();
        let start = *range.get_or_insert(batch.as_ptr() as usize);
        let p = batch.as_ptr() as usize;
        // Every batch lands in the first allocation: the space of dropped batches is
        // reclaimed.
        assert!(p >= start && p + batch.len() <= start + 4096, "batch {i}");
        assert_eq!(batch[batch.len() - 2], i);
    }
    // seal leaves an empty batch with the same options behind.
    assert!(b.is_empty());
    assert_eq!(b.estimated_size(), RECORD_BATCH_OVERHEAD);
}

#[test]
fn builder_takes_an_offered_buffer_only_when_its_own_is_in_flight() {
    let mut c = Compressor::new();
    let mut b =
        RecordBatchBuilder::with_buffer(BatchOptions::default(), BytesMut::with_capacity(4096));
    b.append(1, None, Some(&[1; 100]), &[]).unwrap();
    // Mid-batch: refused.
    let spare = BytesMut::from(&[7u8; 3000][..]);
    let spare = b
        .offer_buffer(spare)
        .expect("refused while a batch is open");
    let in_flight = b.seal(&mut c).unwrap();
    // The last batch is still held (in flight): the offered buffer is taken, and the next
    // batch is written into it, its old bytes overwritten.
    let spare_ptr = spare.as_ptr() as usize;
    assert!(b.offer_buffer(spare).is_none(), "taken");
    b.append(2, None, Some(&[2; 100]), &[]).unwrap();
    let next = b.seal(&mut c).unwrap();
    assert_eq!(next.as_ptr() as usize, spare_ptr);
    assert_eq!(next[next.len() - 2], 2);
    let decoded: Vec<_> = BatchDecoder::default()
        .batches(next.clone())
        .next()
        .unwrap()
        .unwrap()
        .records()
        .map(|r| r.unwrap().value_bytes().unwrap())
        .collect();
    assert_eq!(decoded, vec![bytes::Bytes::from(vec![2u8; 100])]);
    // With its own allocation free again (both batches dropped), an offer is handed back.
    drop((in_flight, next, decoded));
    let other = BytesMut::from(&[9u8; 64][..]);
    assert!(b.offer_buffer(other).is_some(), "own allocation reusable");
}

#[test]
fn decoder_recycles_its_decompression_buffer() {
    let mut c = Compressor::new();
    let recs: Vec<_> = (0..100)
        .map(|i| TestRecord {
            timestamp: i,
            key: None,
            value: Some(vec![i as u8; 100]),
            headers: vec![],
        })
        .collect();
    let batch = build(
        BatchOptions {
            compression: Compression::Lz4,
            ..Default::default()
        },
        &recs,
        &mut c,
    );
    let mut dec = BatchDecoder::default();
    let b = dec.batches(batch.clone()).next().unwrap().unwrap();
    let ptr = b.records_bytes().as_ptr();
    dec.recycle(b);
    let b = dec.batches(batch.clone()).next().unwrap().unwrap();
    assert_eq!(b.records_bytes().as_ptr(), ptr);
    // A batch whose bytes are still shared is simply not recycled.
    let keep = b.records_bytes().clone();
    dec.recycle(b);
    let b = dec.batches(batch).next().unwrap().unwrap();
    assert_ne!(b.records_bytes().as_ptr(), keep.as_ptr());
}

#[test]
fn log_append_time_reports_max_timestamp() {
    let opts = BatchOptions {
        timestamp_type: TimestampType::LogAppendTime,
        ..Default::default()
    };
    let mut b = RecordBatchBuilder::new(opts);
    for ts in [30, 10, 20] {
        b.append(ts, None, Some(b"v"), &[]).unwrap();
    }
    let batch = b.seal(&mut Compressor::new()).unwrap();
    let decoded = decode_all(batch);
    assert!(decoded[0].1.iter().all(|(_, r)| r.timestamp == 30));
}

fn two_batches(codec: Compression) -> (Bytes, Bytes) {
    let mut c = Compressor::new();
    let recs: Vec<_> = (0..10)
        .map(|i| TestRecord {
            timestamp: i,
            key: Some(vec![i as u8]),
            value: Some(vec![1; 50]),
            headers: vec![],
        })
        .collect();
    let a = build(
        BatchOptions {
            compression: codec,
            ..Default::default()
        },
        &recs,
        &mut c,
    );
    let b = build(
        BatchOptions {
            base_offset: 10,
            compression: codec,
            ..Default::default()
        },
        &recs,
        &mut c,
    );
    (a, b)
}

fn concat(parts: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    for p in parts {
        out.put_slice(p);
    }
    out.freeze()
}

#[test]
fn truncated_trailing_batch_ends_iteration_cleanly() {
    for codec in Compression::ALL {
        let (a, b) = two_batches(codec);
        for cut in [1, 11, 12, 17, 60, b.len() - 1] {
            let data = concat(&[&a, &b[..cut]]);
            let mut dec = BatchDecoder::default();
            let mut it = dec.batches(data);
            let first = it.next().unwrap().unwrap();
            assert_eq!(first.records().count(), 10);
            assert!(it.next().is_none(), "{codec} cut at {cut}");
            assert_eq!(it.truncated_tail(), cut);
        }
        let data = concat(&[&a, &b]);
        assert_eq!(BatchDecoder::default().batches(data).count(), 2);
    }
}

#[test]
fn any_flipped_byte_is_caught() {
    let (a, _) = two_batches(Compression::Snappy);
    for i in 0..a.len() {
        let mut bytes = a.to_vec();
        bytes[i] ^= 0x20;
        let mut dec = BatchDecoder::default();
        let r: Result<Vec<_>> = dec.batches(Bytes::from(bytes)).collect();
        match i {
            // baseOffset and partitionLeaderEpoch are outside the CRC (the broker rewrites
            // them): the batch still decodes.
            0..=7 | 12..=15 => assert!(r.is_ok(), "byte {i}"),
            // A longer batchLength runs past the buffer (truncated: no batch); a shorter one
            // changes what the CRC covers.
            8..=11 => assert!(
                matches!(r, Ok(ref v) if v.is_empty()) || r.is_err(),
                "byte {i}"
            ),
            16 => assert!(
                matches!(r, Err(CodecError::UnsupportedMagic { .. })),
                "byte {i}"
            ),
            _ => assert!(
                matches!(r, Err(CodecError::CrcMismatch { .. })),
                "byte {i}: {r:?}"
            ),
        }
    }
}

fn patch(batch: &[u8], at: usize, bytes: &[u8]) -> Bytes {
    let mut v = batch.to_vec();
    v[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32c::crc32c(&v[21..]);
    v[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(v)
}

#[test]
fn huge_record_count_is_refused_before_iterating() {
    for codec in Compression::ALL {
        let (a, _) = two_batches(codec);
        for count in [i32::MAX, 1_000_000, -1] {
            let bad = patch(&a, 57, &count.to_be_bytes());
            let mut dec = BatchDecoder::new(1 << 20);
            let r = dec.batches(bad).next().unwrap();
            assert!(
                matches!(
                    r,
                    Err(CodecError::InvalidLength {
                        what: "record count",
                        ..
                    })
                ),
                "{codec} {count}: {r:?}"
            );
        }
    }
    // A count that fits the bytes but is wrong is an error when iterating, not a panic.
    let (a, _) = two_batches(Compression::None);
    let bad = patch(&a, 57, &11i32.to_be_bytes());
    let mut dec = BatchDecoder::default();
    let b = dec.batches(bad).next().unwrap().unwrap();
    let rs: Vec<_> = b.records().collect();
    assert_eq!(rs.len(), 11);
    assert!(rs[10].is_err());
    let bad = patch(&a, 57, &9i32.to_be_bytes());
    let b = dec.batches(bad).next().unwrap().unwrap();
    let rs: Vec<_> = b.records().collect();
    assert_eq!(
        rs.len(),
        10,
        "nine records, then the leftover bytes are reported"
    );
    assert!(rs[9].is_err());
}

#[test]
fn bad_lengths_magic_and_codec() {
    let (a, _) = two_batches(Compression::None);
    let mut dec = BatchDecoder::default();
    // Negative and too-small batch lengths.
    for len in [-1i32, 0, 13] {
        let mut v = a.to_vec();
        v[8..12].copy_from_slice(&len.to_be_bytes());
        let r = dec.batches(Bytes::from(v)).next().unwrap();
        assert!(matches!(r, Err(CodecError::InvalidLength { .. })), "{len}");
    }
    // A magic 2 batch shorter than its header.
    let mut v = a[..40].to_vec();
    v[8..12].copy_from_slice(&28i32.to_be_bytes());
    assert!(dec.batches(Bytes::from(v)).next().unwrap().is_err());
    // Negative base offset.
    let mut v = a.to_vec();
    v[..8].copy_from_slice(&(-5i64).to_be_bytes());
    assert!(matches!(
        dec.batches(Bytes::from(v)).next().unwrap(),
        Err(CodecError::CorruptBatch { .. })
    ));
    // Magic 3.
    let mut v = a.to_vec();
    v[16] = 3;
    assert_eq!(
        dec.batches(Bytes::from(v)).next().unwrap().unwrap_err(),
        CodecError::UnsupportedMagic { magic: 3 }
    );
    // Codecs 5, 6, 7.
    for id in 5..=7u8 {
        let bad = patch(&a, 21, &[0, id]);
        assert_eq!(
            dec.batches(bad).next().unwrap().unwrap_err(),
            CodecError::UnknownCompression { id }
        );
    }
    // After an error the iterator is done.
    let mut v = a.to_vec();
    v[30] ^= 1;
    let mut it = dec.batches(concat(&[&v, &a]));
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn decompression_bomb_in_a_batch_is_refused() {
    let mut c = Compressor::new();
    let zeros = vec![0u8; 100 << 20];
    for codec in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        let compressed = c.compress(codec, &zeros).unwrap().to_vec();
        // A batch claiming one record whose compressed section is the bomb.
        let mut b = RecordBatchBuilder::new(BatchOptions::default());
        b.append(0, None, Some(b"x"), &[]).unwrap();
        let batch = b.seal(&mut c).unwrap();
        let mut v = batch[..61].to_vec();
        v.extend_from_slice(&compressed);
        let len = (v.len() - 12) as i32;
        v[8..12].copy_from_slice(&len.to_be_bytes());
        let bomb = patch(&v, 21, &[0, codec.id()]);
        let t = std::time::Instant::now();
        let mut dec = BatchDecoder::new(1 << 20);
        let r = dec.batches(bomb).next().unwrap();
        assert_eq!(
            r.unwrap_err(),
            CodecError::DecompressedTooLarge {
                codec: codec.name(),
                cap: 1 << 20
            }
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(dec.pool.capacity() <= (1 << 20) + 1);
    }
}

#[test]
fn malformed_records_and_headers() {
    // Records section bytes for a batch of count 1, hand-made.
    let cases: &[(&[u8], bool)] = &[
        // Length 5: the header count falls outside the record.
        (&[0x0a, 0, 0, 0, 1, 1, 0], false),
        // Key length -2.
        (&[0x0c, 0, 0, 0, 0x03, 1, 0], false),
        // Header count 3 with 2 bytes left.
        (&[0x10, 0, 0, 0, 1, 1, 0x06, 0, 0], false),
        // Record length past the end.
        (&[0x7e, 0, 0, 0, 1, 1, 0], false),
        // A header with a null key: found lazily, when the headers are read.
        (&[0x10, 0, 0, 0, 1, 1, 0x02, 1, 1], true),
    ];
    for (i, (section, header_err)) in cases.iter().enumerate() {
        let mut v = hand_written_batch()[..61].to_vec();
        v.extend_from_slice(section);
        let len = (v.len() - 12) as i32;
        v[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&v[21..]);
        v[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut dec = BatchDecoder::default();
        let batch = dec.batches(Bytes::from(v)).next().unwrap().unwrap();
        let r = batch.records().next().unwrap();
        if *header_err {
            if let Ok(r) = r {
                assert!(r.headers().any(|h| h.is_err()), "case {i}");
            }
        } else {
            assert!(r.is_err(), "case {i}");
        }
    }
}

#[test]
fn control_record_parsing() {
    let m = ControlRecord::parse(Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0, 0, 7])).unwrap();
    assert_eq!(
        m,
        ControlRecord {
            kind: ControlRecordKind::Commit,
            coordinator_epoch: 7
        }
    );
    // A newer key version keeps the version 0 fields.
    let m = ControlRecord::parse(Some(&[0, 1, 0, 0, 9]), Some(&[0, 1, 0, 0, 0, 2, 5])).unwrap();
    assert_eq!(m.kind, ControlRecordKind::Abort);
    assert!(ControlRecord::parse(None, None).is_err());
    assert!(ControlRecord::parse(Some(&[0, 0, 0]), None).is_err());
    assert!(ControlRecord::parse(Some(&[0xff, 0xff, 0, 0]), Some(&[0; 6])).is_err());
    assert!(ControlRecord::parse(Some(&[0, 0, 0, 1]), Some(&[0; 3])).is_err());
    let m = ControlRecord::parse(Some(&[0, 0, 0, 5]), None).unwrap();
    assert_eq!(m.kind, ControlRecordKind::Unknown(5));
}

// ---- Legacy message sets ----

/// Writes one legacy message (a test-only encoder: the client never writes magic 0/1).
fn legacy_message(
    out: &mut Vec<u8>,
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let mut body = vec![magic as u8, attributes as u8];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            Some(f) => {
                body.extend_from_slice(&(f.len() as i32).to_be_bytes());
                body.extend_from_slice(f);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out.extend_from_slice(&body);
}

fn legacy_wrapper(
    magic: i8,
    codec: Compression,
    log_append: bool,
    wrapper_offset: i64,
    inner_offsets: &[i64],
) -> Vec<u8> {
    let mut inner = Vec::new();
    for (i, &o) in inner_offsets.iter().enumerate() {
        let v = format!("value-{i}");
        legacy_message(
            &mut inner,
            o,
            magic,
            0,
            100 + i as i64,
            Some(b"k"),
            Some(v.as_bytes()),
        );
    }
    let mut c = Compressor::new();
    let mut compressed = c.compress(codec, &inner).unwrap().to_vec();
    if codec == Compression::Lz4 && magic == 0 {
        // KAFKA-3160: magic 0 producers hashed the frame magic into the header checksum.
        compressed[6] = (crate::codec::compression::xxh32(&compressed[..6], 0) >> 8) as u8;
    }
    let attrs = codec.id() as i8 | if log_append { 0x08 } else { 0 };
    let mut out = Vec::new();
    legacy_message(
        &mut out,
        wrapper_offset,
        magic,
        attrs,
        999,
        None,
        Some(&compressed),
    );
    out
}

#[test]
fn legacy_uncompressed_messages() {
    let mut data = Vec::new();
    legacy_message(&mut data, 5, 0, 0, 0, Some(b"k0"), Some(b"v0"));
    legacy_message(&mut data, 6, 1, 0, 1234, None, Some(b"v1"));
    legacy_message(&mut data, 7, 1, 0x08, 4321, Some(b""), None);
    let full = data.len();
    legacy_message(&mut data, 8, 1, 0, 1, None, Some(b"cut")); // truncated below
    data.truncate(full + 20);
    let mut dec = BatchDecoder::default();
    let mut it = dec.batches(Bytes::from(data));
    let mut got = Vec::new();
    for b in it.by_ref() {
        let b = b.unwrap();
        assert_eq!(b.record_count(), 1);
        for r in b.records() {
            let r = r.unwrap();
            got.push((
                b.magic(),
                r.offset(),
                r.timestamp(),
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
            ));
        }
    }
    assert_eq!(it.truncated_tail(), 20);
    assert_eq!(
        got,
        vec![
            (
                0,
                5,
                NO_TIMESTAMP,
                Some(b"k0".to_vec()),
                Some(b"v0".to_vec())
            ),
            (1, 6, 1234, None, Some(b"v1".to_vec())),
            (1, 7, 4321, Some(vec![]), None),
        ]
    );
}

#[test]
fn legacy_compressed_wrappers() {
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        // Magic 1: relative inner offsets, wrapper holds the last absolute offset.
        let data = legacy_wrapper(1, codec, false, 1002, &[0, 1, 2]);
        let decoded = decode_all(Bytes::from(data));
        let (h, recs) = &decoded[0];
        assert_eq!(
            (h.magic, h.base_offset, h.last_offset(), h.record_count),
            (1, 1000, 1002, 3)
        );
        let offsets: Vec<_> = recs.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, [1000, 1001, 1002], "{codec}");
        let ts: Vec<_> = recs.iter().map(|(_, r)| r.timestamp).collect();
        assert_eq!(ts, [100, 101, 102]);
        assert_eq!(recs[2].1.value.as_deref(), Some(&b"value-2"[..]));
        // LogAppendTime: every record takes the wrapper's timestamp.
        let data = legacy_wrapper(1, codec, true, 1002, &[0, 1, 2]);
        let decoded = decode_all(Bytes::from(data));
        assert!(decoded[0].1.iter().all(|(_, r)| r.timestamp == 999));
        // Magic 0: inner offsets are absolute (and LZ4 carries the KAFKA-3160 checksum).
        let data = legacy_wrapper(0, codec, false, 52, &[50, 51, 52]);
        let decoded = decode_all(Bytes::from(data));
        let offsets: Vec<_> = decoded[0].1.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, [50, 51, 52], "{codec}");
        assert!(decoded[0]
            .1
            .iter()
            .all(|(_, r)| r.timestamp == NO_TIMESTAMP));
    }
}

#[test]
fn legacy_corruption() {
    let mut dec = BatchDecoder::default();
    // A flipped byte in an uncompressed message.
    let mut data = Vec::new();
    legacy_message(&mut data, 0, 1, 0, 1, Some(b"k"), Some(b"v"));
    data[25] ^= 1;
    assert!(matches!(
        dec.batches(Bytes::from(data)).next().unwrap(),
        Err(CodecError::CrcMismatch { .. })
    ));
    // Nested compression inside a wrapper.
    let inner = legacy_wrapper(1, Compression::Gzip, false, 0, &[0]);
    let compressed = Compressor::new()
        .compress(Compression::Gzip, &inner)
        .unwrap()
        .to_vec();
    let mut data = Vec::new();
    legacy_message(&mut data, 0, 1, 1, 0, None, Some(&compressed));
    assert!(dec.batches(Bytes::from(data)).next().unwrap().is_err());
    // zstd needs magic 2.
    let mut data = Vec::new();
    legacy_message(&mut data, 0, 1, 4, 0, None, Some(b"x"));
    assert!(dec.batches(Bytes::from(data)).next().unwrap().is_err());
    // A wrapper without a value.
    let mut data = Vec::new();
    legacy_message(&mut data, 0, 1, 1, 0, None, None);
    assert!(dec.batches(Bytes::from(data)).next().unwrap().is_err());
    // Key length beyond the message.
    let mut data = Vec::new();
    legacy_message(&mut data, 0, 0, 0, 0, Some(b"k"), Some(b"v"));
    data[18..22].copy_from_slice(&100i32.to_be_bytes());
    assert!(dec.verify_crc_enabled());
    let mut lax = BatchDecoder::default().verify_crc(false);
    assert!(lax.batches(Bytes::from(data)).next().unwrap().is_err());
}

/// Every size at which `append` switches between its fast path (all varints of one or two
/// bytes, record under 2^13 bytes, fields before the key in one word) and its general path,
/// and between one- and two-byte varints, in batches built one after another by one builder
/// (which takes back each sealed batch's allocation): each batch reads back exactly, with
/// the CRC checked, and kafka-protocol's decoder agrees.
#[test]
fn fast_and_general_append_paths_at_every_boundary() {
    use kafka_protocol::records as kp;
    let sizes = [
        0usize, 1, 3, 4, 7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 8100, 8191, 8192, 8200,
    ];
    let deltas = [
        0i64,
        1,
        -1,
        63,
        64,
        -64,
        -65,
        8191,
        8192,
        -8192,
        -8193,
        1 << 40,
    ];
    let mut c = Compressor::new();
    let mut b = RecordBatchBuilder::new(BatchOptions::default());
    let mut batches = 0;
    for &key_len in &sizes {
        for (i, &delta) in deltas.iter().enumerate() {
            let value_len = sizes[(i * 7 + key_len) % sizes.len()];
            let mut want = Vec::new();
            for r in 0..70usize {
                let key = (r % 5 != 4).then(|| vec![(r % 251) as u8; key_len]);
                let value = (r % 7 != 6).then(|| vec![(r % 253) as u8; value_len + r % 3]);
                let headers = if r % 3 == 0 {
                    vec![
                        (vec![b'h'; r % 70], Some(vec![7u8; r % 9])),
                        (b"n".to_vec(), None),
                    ]
                } else {
                    Vec::new()
                };
                let t = TestRecord {
                    timestamp: 1_700_000_000_000 + delta * (r as i64 % 3),
                    key,
                    value,
                    headers,
                };
                let hs = t.header_refs();
                let predicted =
                    b.estimated_size_with(t.timestamp, t.key.as_deref(), t.value.as_deref(), &hs);
                assert_eq!(
                    b.append(t.timestamp, t.key.as_deref(), t.value.as_deref(), &hs)
                        .unwrap(),
                    r as i32
                );
                assert_eq!(b.estimated_size(), predicted);
                want.push(t);
            }
            let batch = b.seal(&mut c).unwrap();
            batches += 1;
            let got = decode_all(batch.clone());
            assert_eq!(got.len(), 1);
            let (header, records) = &got[0];
            assert_eq!(header.record_count, 70);
            for (r, (offset, rec)) in records.iter().enumerate() {
                assert_eq!(*offset, r as i64);
                assert_eq!(rec, &want[r], "key {key_len} delta {delta} record {r}");
            }
            let mut theirs = batch.clone();
            let set = kp::RecordBatchDecoder::decode(&mut theirs).unwrap();
            assert_eq!(set.records.len(), 70);
            for (k, w) in set.records.iter().zip(&want) {
                assert_eq!(k.timestamp, w.timestamp);
                assert_eq!(k.key.as_deref(), w.key.as_deref());
                assert_eq!(k.value.as_deref(), w.value.as_deref());
                assert_eq!(k.headers.len(), w.headers.len());
            }
        }
    }
    assert_eq!(batches, sizes.len() * deltas.len());
    // Offset deltas past two varint bytes (2^13 records) in one batch.
    for r in 0..20_000u32 {
        b.append(5, Some(&r.to_be_bytes()), None, &[]).unwrap();
    }
    let got = decode_all(b.seal(&mut c).unwrap());
    let records = &got[0].1;
    assert_eq!(records.len(), 20_000);
    for (r, (offset, rec)) in records.iter().enumerate() {
        assert_eq!(*offset, r as i64);
        assert_eq!(rec.key.as_deref(), Some(&(r as u32).to_be_bytes()[..]));
        assert_eq!((rec.timestamp, rec.value.as_ref()), (5, None));
    }
}

/// Keys and values at every length of the inline copies (and past them), each byte
/// distinct, so that an overlapping move that lands wrong shows.
#[test]
fn every_short_copy_length_roundtrips() {
    let mut c = Compressor::new();
    let records: Vec<TestRecord> = (0..=140usize)
        .map(|n| TestRecord {
            timestamp: 1_700_000_000_000 + n as i64,
            key: Some((0..(n % 41)).map(|i| (i * 7 + n) as u8).collect()),
            value: Some((0..n).map(|i| (i * 13 + n) as u8).collect()),
            headers: vec![(
                (0..(n % 23)).map(|i| i as u8).collect(),
                Some((0..n).map(|i| (i * 3) as u8).collect()),
            )],
        })
        .collect();
    check_roundtrip(BatchOptions::default(), &records, &mut c);
}
