//! Our decoder reads record batches written by real producers — Kafka's Java console producer
//! (kafka-clients 4.4.0) and kcat (librdkafka) — in every codec, exactly. The batches are raw
//! partition log segments captured by `scripts/capture-golden` (see tests/golden/README.md).

use bytes::Bytes;
use kafka_core::codec::compression::Compression;
use kafka_core::codec::records::BatchDecoder;
use tests::repo_root;

struct Expected {
    key: String,
    value: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
}

/// The eight records every golden file holds (tests/golden/README.md).
fn expected(producer: &str, codec: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    for i in 0..8 {
        let value = match i {
            4 => {
                let mut v = format!("v4-{codec}:").into_bytes();
                for _ in 0..200 {
                    v.extend_from_slice(b"0123456789");
                }
                Some(v)
            }
            7 => None,
            _ => Some(format!("v{i}-{codec}").into_bytes()),
        };
        let pairs: &[(&str, &str)] = match (producer, i) {
            (_, 0..=4) => &[],
            ("java", 5) => &[("h1", "x"), ("h2", "y")],
            ("java", 6) => &[("trace", "abc")],
            ("java", 7) => &[("h1", "tomb")],
            _ => &[("h1", "x"), ("h2", "y")],
        };
        out.push(Expected {
            key: format!("k{i}"),
            value,
            headers: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
    }
    out
}

fn check(producer: &str, codec: Compression) {
    let name = format!("{producer}-{}.log", codec.name());
    let path = repo_root().join("tests/golden").join(&name);
    let data = Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}")));
    let want = expected(producer, codec.name());
    let mut decoder = BatchDecoder::default();
    let mut batches = 0;
    let mut got = 0usize;
    let mut codecs = Vec::new();
    for batch in decoder.batches(data) {
        let batch = batch.unwrap_or_else(|e| panic!("{name}: {e}"));
        batches += 1;
        codecs.push(batch.compression());
        let pid = batch.header().producer_id;
        if producer == "java" {
            assert!(
                pid >= 0,
                "{name}: the Java producer is idempotent, pid {pid}"
            );
        } else {
            assert_eq!(pid, -1, "{name}: kcat here is not idempotent");
        }
        for record in batch.records() {
            let r = record.unwrap_or_else(|e| panic!("{name}: {e}"));
            let w = &want[got];
            assert_eq!(r.offset(), got as i64, "{name}");
            assert_eq!(r.key(), Some(w.key.as_bytes()), "{name} offset {got}");
            assert_eq!(r.value(), w.value.as_deref(), "{name} offset {got}");
            let headers: Vec<(String, String)> = r
                .headers()
                .map(|h| {
                    let h = h.unwrap();
                    (
                        String::from_utf8(h.key.to_vec()).unwrap(),
                        String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
                    )
                })
                .collect();
            assert_eq!(headers, w.headers, "{name} offset {got}");
            assert!(r.timestamp() > 1_600_000_000_000, "{name}: CreateTime");
            got += 1;
        }
    }
    assert_eq!(got, 8, "{name}: records");
    assert_eq!(batches, 2, "{name}: batches");
    // The first batch always carries the file's codec; librdkafka may send a small second
    // batch uncompressed when compression would not shrink it.
    assert_eq!(codecs[0], codec, "{name}");
    if producer == "java" {
        assert_eq!(codecs[1], codec, "{name}");
    }
}

#[test]
fn java_producer_batches_decode_exactly() {
    for codec in Compression::ALL {
        check("java", codec);
    }
}

#[test]
fn kcat_batches_decode_exactly() {
    for codec in Compression::ALL {
        check("kcat", codec);
    }
}
