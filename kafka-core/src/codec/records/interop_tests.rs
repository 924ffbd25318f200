//! Cross-checks against `kafka-protocol`'s own record codec (`RecordBatchEncoder` and
//! `RecordBatchDecoder`), for every codec: what we write it reads, and what it writes we read.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use proptest::prelude::*;

use super::tests::{build, decode_all, TestRecord};
use super::*;
use crate::codec::compression::{Compression, Compressor};

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

/// kafka-protocol keeps headers in a map keyed by UTF-8 strings, and its decoder adds
/// timestamps without wrapping: records are generated to fit both.
fn interop_records() -> impl Strategy<Value = Vec<TestRecord>> {
    let bytes = |max| {
        prop_oneof![
            1 => Just(None),
            6 => proptest::collection::vec(any::<u8>(), 0..max).prop_map(Some),
        ]
    };
    let record = (
        0i64..1 << 45,
        bytes(30),
        prop_oneof![4 => bytes(300), 1 => bytes(64 * 1024)],
        proptest::collection::btree_map("[a-z]{0,8}", bytes(16), 0..3),
    )
        .prop_map(|(timestamp, key, value, headers)| TestRecord {
            timestamp,
            key,
            value,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.into_bytes(), v))
                .collect(),
        });
    proptest::collection::vec(record, 1..40)
}

fn to_kp(opts: &BatchOptions, records: &[TestRecord]) -> Vec<kp::Record> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| kp::Record {
            transactional: opts.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: opts.partition_leader_epoch,
            producer_id: opts.producer_id,
            producer_epoch: opts.producer_epoch,
            timestamp_type: kp::TimestampType::Creation,
            offset: opts.base_offset + i as i64,
            sequence: opts.base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        StrBytes::from_string(String::from_utf8(k.clone()).unwrap()),
                        v.clone().map(Bytes::from),
                    )
                })
                .collect::<IndexMap<_, _>>(),
        })
        .collect()
}

fn options(codec: Compression, pid: i64, seq: i32, txn: bool) -> BatchOptions {
    BatchOptions {
        base_offset: 1000,
        compression: codec,
        producer_id: pid,
        producer_epoch: if pid < 0 { -1 } else { 3 },
        base_sequence: seq,
        transactional: txn,
        partition_leader_epoch: 7,
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn kafka_protocol_reads_ours(
        records in interop_records(),
        pid in prop_oneof![Just(-1i64), 0i64..1 << 40],
        seq in 0i32..1 << 30,
        txn in any::<bool>(),
    ) {
        let mut c = Compressor::new();
        for codec in Compression::ALL {
            let opts = options(codec, pid, seq, txn);
            let mut bytes = build(opts, &records, &mut c);
            let set = kp::RecordBatchDecoder::decode(&mut bytes).unwrap();
            prop_assert!(bytes.is_empty());
            prop_assert_eq!(set.version, 2);
            prop_assert_eq!(set.compression, kp_codec(codec));
            prop_assert_eq!(&set.records, &to_kp(&opts, &records), "{}", codec);
        }
    }

    #[test]
    fn we_read_kafka_protocols(
        records in interop_records(),
        pid in prop_oneof![Just(-1i64), 0i64..1 << 40],
        seq in 0i32..1 << 30,
        txn in any::<bool>(),
    ) {
        for codec in Compression::ALL {
            let opts = options(codec, pid, seq, txn);
            let theirs = to_kp(&opts, &records);
            let mut buf = BytesMut::new();
            kp::RecordBatchEncoder::encode(
                &mut buf,
                &theirs,
                &kp::RecordEncodeOptions { version: 2, compression: kp_codec(codec) },
            )
            .unwrap();
            let decoded = decode_all(buf.freeze());
            prop_assert_eq!(decoded.len(), 1);
            let (h, got) = &decoded[0];
            prop_assert_eq!(h.compression().unwrap(), codec);
            prop_assert_eq!(h.producer_id, pid);
            prop_assert_eq!(h.base_sequence, seq);
            prop_assert_eq!(h.is_transactional(), txn);
            prop_assert_eq!(h.partition_leader_epoch, 7);
            prop_assert_eq!(got.len(), records.len());
            for (i, ((offset, got), want)) in got.iter().zip(&records).enumerate() {
                prop_assert_eq!(*offset, 1000 + i as i64);
                prop_assert_eq!(got, want, "{}", codec);
            }
        }
    }
}

#[test]
fn control_batches_interoperate() {
    let marker = ControlRecord {
        kind: ControlRecordKind::Commit,
        coordinator_epoch: 42,
    };
    let opts = options(Compression::None, 9, 0, true);
    let mut ours = RecordBatchBuilder::control_batch(opts, marker, 77).unwrap();
    let set = kp::RecordBatchDecoder::decode(&mut ours).unwrap();
    let r = &set.records[0];
    assert!(r.control && r.transactional);
    assert_eq!(r.key.as_deref(), Some(&marker.key()[..]));
    assert_eq!(r.value.as_deref(), Some(&marker.value()[..]));

    let mut theirs = to_kp(
        &opts,
        &[TestRecord {
            timestamp: 77,
            key: Some(marker.key().to_vec()),
            value: Some(marker.value().to_vec()),
            headers: vec![],
        }],
    );
    theirs[0].control = true;
    let mut buf = BytesMut::new();
    kp::RecordBatchEncoder::encode(
        &mut buf,
        &theirs,
        &kp::RecordEncodeOptions {
            version: 2,
            compression: kp::Compression::None,
        },
    )
    .unwrap();
    let mut dec = BatchDecoder::default();
    let batch = dec.batches(buf.freeze()).next().unwrap().unwrap();
    assert!(batch.is_control());
    assert_eq!(batch.control_record().unwrap(), Some(marker));
}
