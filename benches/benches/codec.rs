//! Record-batch encode and decode: ours (`kafka_core::codec::records`) beside
//! `kafka-protocol`'s `RecordBatchEncoder`/`RecordBatchDecoder`, on the same records and, for
//! decoding, the same bytes.
//!
//! Groups: `record_batch` (1000 records, 8-16 byte keys, 100-byte values, no headers),
//! `record_batch_headers` (the same with 3 headers per record) and `record_batch_10k` (10 KiB
//! values). Ids: `encode-ours/<codec>`, `encode-kafka-protocol/<codec>`, `decode-ours/<codec>`,
//! `decode-kafka-protocol/<codec>`. Decoding touches every key and value (and header, in the
//! headers group) and sums their lengths.
//!
//! Ours reuses the builder's buffer, the `Compressor` and the `BatchDecoder` across iterations,
//! as a producer and a consumer do; kafka-protocol's API has nothing to reuse but the output
//! buffer, which it is given.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use kafka_core::codec::compression::{Compression, Compressor};
use kafka_core::codec::records::{BatchDecoder, BatchOptions, Header, RecordBatchBuilder};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;

const RECORDS: usize = 1000;
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;
const HEADER_KEYS: [&str; 3] = ["trace-id", "content-type", "origin"];

/// The records of one workload, owned, so each side builds its own view of them outside the
/// timed loop.
struct Workload {
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    /// Per record, one value per `HEADER_KEYS` entry (empty when the workload has none).
    headers: Vec<Vec<Vec<u8>>>,
}

/// Text-like bytes from a small LCG: compressible about as much as typical JSON payloads.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 {}\":,";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Skewed towards the first letters, as natural text is.
            let r = (x >> 33) as usize;
            ALPHABET[(r % ALPHABET.len()).min(r % 17)]
        })
        .collect()
}

impl Workload {
    fn new(value_len: usize, with_headers: bool) -> Self {
        let keys = (0..RECORDS)
            .map(|i| format!("key-{i:0width$}", width = 4 + i % 9).into_bytes())
            .collect();
        let values = (0..RECORDS).map(|i| payload(i as u64, value_len)).collect();
        let headers = (0..RECORDS)
            .map(|i| {
                if with_headers {
                    (0..HEADER_KEYS.len())
                        .map(|h| payload((i * 7 + h) as u64, 8 + (i + h) % 9))
                        .collect()
                } else {
                    Vec::new()
                }
            })
            .collect();
        Self {
            keys,
            values,
            headers,
        }
    }

    fn kafka_protocol_records(&self) -> Vec<kp::Record> {
        (0..RECORDS)
            .map(|i| kp::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kp::TimestampType::Creation,
                offset: i as i64,
                // kafka-protocol starts a new batch whenever offset - sequence changes: keep it
                // constant, with base sequence -1 (no idempotence), so it writes one batch too.
                sequence: (i as i32).wrapping_sub(1),
                timestamp: BASE_TIMESTAMP + i as i64,
                key: Some(Bytes::from(self.keys[i].clone())),
                value: Some(Bytes::from(self.values[i].clone())),
                headers: self.headers[i]
                    .iter()
                    .zip(HEADER_KEYS)
                    .map(|(v, k)| (StrBytes::from_static_str(k), Some(Bytes::from(v.clone()))))
                    .collect::<IndexMap<_, _>>(),
            })
            .collect()
    }
}

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

/// The workload as our builder takes it: borrowed keys, values and headers, laid out once
/// outside the timed loop (as kafka-protocol's `Record`s are).
struct OurRecords<'a> {
    records: Vec<(&'a [u8], &'a [u8])>,
    /// Per record, its headers (empty when the workload has none).
    headers: Vec<Vec<Header<'a>>>,
}

impl Workload {
    fn our_records(&self) -> OurRecords<'_> {
        OurRecords {
            records: self
                .keys
                .iter()
                .zip(&self.values)
                .map(|(k, v)| (&k[..], &v[..]))
                .collect(),
            headers: self
                .headers
                .iter()
                .map(|hs| {
                    hs.iter()
                        .zip(HEADER_KEYS)
                        .map(|(v, k)| Header {
                            key: k.as_bytes(),
                            value: Some(v),
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// Appends the whole workload to `builder` (reset first) and seals it.
fn encode_ours(
    w: &OurRecords<'_>,
    builder: &mut RecordBatchBuilder,
    compressor: &mut Compressor,
    opts: BatchOptions,
) -> Bytes {
    builder.reset(opts);
    for (i, ((key, value), headers)) in w.records.iter().zip(&w.headers).enumerate() {
        builder
            .append(BASE_TIMESTAMP + i as i64, Some(key), Some(value), headers)
            .unwrap();
    }
    builder.seal(compressor).unwrap()
}

fn decode_ours(decoder: &mut BatchDecoder, batch: &Bytes, with_headers: bool) -> usize {
    let mut sum = 0usize;
    let mut batches = decoder.batches(batch.clone());
    while let Some(b) = batches.next() {
        let b = b.unwrap();
        for r in b.records() {
            let r = r.unwrap();
            sum += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
            if with_headers {
                for h in r.headers() {
                    let h = h.unwrap();
                    sum += h.key.len() + h.value.map_or(0, <[u8]>::len);
                }
            }
        }
        batches.recycle(b);
    }
    sum
}

fn decode_kafka_protocol(batch: &Bytes, with_headers: bool) -> usize {
    let mut bytes = batch.clone();
    let set = kp::RecordBatchDecoder::decode(&mut bytes).unwrap();
    let mut sum = 0usize;
    for r in &set.records {
        sum += r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len);
        if with_headers {
            for (k, v) in &r.headers {
                sum += k.len() + v.as_ref().map_or(0, Bytes::len);
            }
        }
    }
    sum
}

fn bench_workload(c: &mut Criterion, group: &str, value_len: usize, with_headers: bool) {
    let workload = Workload::new(value_len, with_headers);
    let kp_records = workload.kafka_protocol_records();
    let w = workload.our_records();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(RECORDS as u64));
    if value_len > 1024 {
        // 10 MB per batch: fewer, longer samples.
        g.sample_size(10);
    }
    for codec in Compression::ALL {
        let opts = BatchOptions {
            compression: codec,
            ..BatchOptions::default()
        };
        let mut builder = RecordBatchBuilder::new(opts);
        let mut compressor = Compressor::new();
        // A copy: a batch kept alive would pin the builder's buffer, and every encode below
        // would have to allocate afresh.
        let batch = Bytes::copy_from_slice(&encode_ours(&w, &mut builder, &mut compressor, opts));

        // Both decoders read the same bytes, and agree on them.
        let mut decoder = BatchDecoder::default();
        assert_eq!(
            decode_ours(&mut decoder, &batch, with_headers),
            decode_kafka_protocol(&batch, with_headers)
        );

        g.bench_function(BenchmarkId::new("encode-ours", codec.name()), |b| {
            // The batch is dropped at once, as a producer drops it once it is sent: the
            // builder then reuses its allocation (kafka-protocol's side reuses `out`).
            b.iter(|| black_box(encode_ours(&w, &mut builder, &mut compressor, opts).len()))
        });
        let kp_opts = kp::RecordEncodeOptions {
            version: 2,
            compression: kp_codec(codec),
        };
        let mut out = BytesMut::with_capacity(batch.len() * 2);
        // One batch on both sides, or the comparison is off.
        kp::RecordBatchEncoder::encode(&mut out, &kp_records, &kp_opts).unwrap();
        let mut theirs = out.split().freeze();
        kp::RecordBatchDecoder::decode(&mut theirs).unwrap();
        assert!(
            theirs.is_empty(),
            "kafka-protocol wrote more than one batch"
        );
        drop(theirs);
        g.bench_function(
            BenchmarkId::new("encode-kafka-protocol", codec.name()),
            |b| {
                b.iter(|| {
                    out.clear();
                    kp::RecordBatchEncoder::encode(&mut out, &kp_records, &kp_opts).unwrap();
                    black_box(out.len())
                })
            },
        );
        g.bench_function(BenchmarkId::new("decode-ours", codec.name()), |b| {
            b.iter(|| black_box(decode_ours(&mut decoder, &batch, with_headers)))
        });
        g.bench_function(
            BenchmarkId::new("decode-kafka-protocol", codec.name()),
            |b| b.iter(|| black_box(decode_kafka_protocol(&batch, with_headers))),
        );
    }
    g.finish();
}

fn record_batch(c: &mut Criterion) {
    bench_workload(c, "record_batch", 100, false);
}

fn record_batch_headers(c: &mut Criterion) {
    bench_workload(c, "record_batch_headers", 100, true);
}

fn record_batch_10k(c: &mut Criterion) {
    bench_workload(c, "record_batch_10k", 10 * 1024, false);
}

criterion_group!(
    benches,
    record_batch,
    record_batch_headers,
    record_batch_10k
);
/// `CODEC_AB=1` runs a quick interleaved comparison instead of criterion: each side once per
/// round, many rounds, best time kept. On a shared, busy machine the minimum is a steadier
/// estimate of the uncontended cost than criterion's mean.
fn ab() {
    let rounds: usize = std::env::var("CODEC_AB_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let workloads: &[(&str, usize, bool)] = if std::env::var_os("CODEC_AB_10K").is_some() {
        &[("record_batch_10k", 10 * 1024, false)]
    } else {
        &[
            ("record_batch", 100, false),
            ("record_batch_headers", 100, true),
        ]
    };
    for &(name, value_len, with_headers) in workloads {
        let workload = Workload::new(value_len, with_headers);
        let kp_records = workload.kafka_protocol_records();
        let w = workload.our_records();
        let codecs: &[Compression] = if std::env::var_os("CODEC_AB_NONE").is_some() {
            &[Compression::None]
        } else if std::env::var_os("CODEC_AB_ALL").is_some() {
            &Compression::ALL
        } else {
            &[Compression::None, Compression::Lz4]
        };
        for &codec in codecs {
            let opts = BatchOptions {
                compression: codec,
                ..BatchOptions::default()
            };
            let mut builder = RecordBatchBuilder::new(opts);
            let mut compressor = Compressor::new();
            let batch =
                Bytes::copy_from_slice(&encode_ours(&w, &mut builder, &mut compressor, opts));
            let mut decoder = BatchDecoder::default();
            let kp_opts = kp::RecordEncodeOptions {
                version: 2,
                compression: kp_codec(codec),
            };
            let mut out = BytesMut::with_capacity(batch.len() * 2);
            let mut best = [std::time::Duration::MAX; 4];
            // Per round, kafka-protocol's time over ours: the two ran back to back, so a slow
            // stretch of the machine slows both, and the ratio of the pair stays fair.
            let (mut encode_ratios, mut decode_ratios) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                let mut times = [std::time::Duration::ZERO; 4];
                let t = std::time::Instant::now();
                black_box(encode_ours(&w, &mut builder, &mut compressor, opts).len());
                times[0] = t.elapsed();
                let t = std::time::Instant::now();
                out.clear();
                kp::RecordBatchEncoder::encode(&mut out, &kp_records, &kp_opts).unwrap();
                black_box(out.len());
                times[1] = t.elapsed();
                let t = std::time::Instant::now();
                black_box(decode_ours(&mut decoder, &batch, with_headers));
                times[2] = t.elapsed();
                let t = std::time::Instant::now();
                black_box(decode_kafka_protocol(&batch, with_headers));
                times[3] = t.elapsed();
                for (b, t) in best.iter_mut().zip(times) {
                    *b = (*b).min(t);
                }
                encode_ratios.push(times[1].as_secs_f64() / times[0].as_secs_f64());
                decode_ratios.push(times[3].as_secs_f64() / times[2].as_secs_f64());
            }
            // Same records, same layout: kafka-protocol's batch must be one batch too.
            let mut theirs = out.clone().freeze();
            kp::RecordBatchDecoder::decode(&mut theirs).unwrap();
            assert!(
                theirs.is_empty(),
                "kafka-protocol wrote more than one batch"
            );
            println!(
                "{name}/{codec}: encode ours {:?} kafka-protocol {:?} ratio {:.2}; decode ours {:?} kafka-protocol {:?} ratio {:.2}",
                best[0],
                best[1],
                best[1].as_secs_f64() / best[0].as_secs_f64(),
                best[2],
                best[3],
                best[3].as_secs_f64() / best[2].as_secs_f64(),
            );
            let (e, d) = (quantiles(&mut encode_ratios), quantiles(&mut decode_ratios));
            println!(
                "{name}/{codec}: paired ratios over {rounds} rounds (p10 / median / p90): encode {:.2} / {:.2} / {:.2}; decode {:.2} / {:.2} / {:.2}",
                e[0], e[1], e[2], d[0], d[1], d[2],
            );
        }
    }
}

/// p10, median and p90 of `v` (sorted in place).
fn quantiles(v: &mut [f64]) -> [f64; 3] {
    v.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    [at(0.1), at(0.5), at(0.9)]
}

/// `CODEC_PROFILE=<op>` (`encode-ours`, `encode-kafka-protocol`, `decode-ours`,
/// `decode-kafka-protocol`) runs only that operation on `record_batch`/none, `CODEC_AB_ROUNDS`
/// times, and prints the best time, percentiles and the mean: a loop to put under `perf`.
fn profile(op: &str) {
    let rounds: usize = std::env::var("CODEC_AB_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let with_headers = std::env::var_os("CODEC_PROFILE_HEADERS").is_some();
    let workload = Workload::new(100, with_headers);
    let kp_records = workload.kafka_protocol_records();
    let w = workload.our_records();
    let opts = BatchOptions::default();
    let mut builder = RecordBatchBuilder::new(opts);
    let mut compressor = Compressor::new();
    let batch = Bytes::copy_from_slice(&encode_ours(&w, &mut builder, &mut compressor, opts));
    let mut decoder = BatchDecoder::default();
    let kp_opts = kp::RecordEncodeOptions {
        version: 2,
        compression: kp::Compression::None,
    };
    let mut out = BytesMut::with_capacity(batch.len() * 2);
    let mut times = Vec::with_capacity(rounds);
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let t = std::time::Instant::now();
        match op {
            "encode-ours" => {
                black_box(encode_ours(&w, &mut builder, &mut compressor, opts).len());
            }
            "encode-kafka-protocol" => {
                out.clear();
                kp::RecordBatchEncoder::encode(&mut out, &kp_records, &kp_opts).unwrap();
                black_box(out.len());
            }
            "decode-ours" => {
                black_box(decode_ours(&mut decoder, &batch, with_headers));
            }
            "decode-kafka-protocol" => {
                black_box(decode_kafka_protocol(&batch, with_headers));
            }
            other => panic!("unknown CODEC_PROFILE operation {other}"),
        }
        times.push(t.elapsed());
    }
    if times.is_empty() {
        return;
    }
    let mean = start.elapsed() / rounds as u32;
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "{op}: best {:?}, p10 {:?}, p50 {:?}, p90 {:?}, mean {mean:?}",
        at(0.0),
        at(0.1),
        at(0.5),
        at(0.9)
    );
    if std::env::var_os("CODEC_PROFILE_DECILES").is_some() {
        let d: Vec<_> = (1..20).map(|i| at(i as f64 / 20.0)).collect();
        println!("{op}: every 5%: {d:?}");
    }
}

fn main() {
    if let Ok(op) = std::env::var("CODEC_PROFILE") {
        profile(&op);
        return;
    }
    if std::env::var_os("CODEC_AB").is_some() {
        ab();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
