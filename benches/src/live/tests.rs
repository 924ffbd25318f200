//! Tests of the whole run path. The broker tests need the `peers` feature (they drive the
//! peer clients) and a real broker, which the repository's kit starts (one node,
//! PLAINTEXT; `KAFKA_KIT_PORT_OFFSET` applies):
//! `cargo test -p benches --features peers --lib live::tests`.

use std::time::Duration;

use crate::live::args::{Acks, Common, Compression, ProduceSpec};
use crate::live::{clients, LiveError};

fn produce_spec(bootstrap: Option<String>, topic: &str, records: u64) -> ProduceSpec {
    ProduceSpec {
        common: Common {
            bootstrap,
            topic: topic.to_string(),
            records,
            timeout: Duration::from_secs(120),
        },
        size: 100,
        acks: Acks::All,
        compression: Compression::None,
        partitions: 3,
        linger_ms: 5,
        // The binary's default.
        batch_size: 1_000_000,
        idempotent: true,
    }
}

#[tokio::test]
async fn unknown_clients_are_refused_before_any_broker_work() {
    // Port 1: nothing listens. The refusal must come first, at once, not after a bootstrap
    // timeout.
    let started = std::time::Instant::now();
    let spec = produce_spec(Some("127.0.0.1:1".into()), "t", 10);
    let e = clients::produce("kafkacat", spec, "127.0.0.1:1".into())
        .await
        .unwrap_err();
    assert!(matches!(e, LiveError::UnknownClient { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[cfg(not(feature = "peers"))]
#[tokio::test]
async fn peers_are_refused_in_a_build_without_them() {
    let spec = produce_spec(Some("127.0.0.1:1".into()), "t", 10);
    let e = clients::produce("rdkafka", spec, "127.0.0.1:1".into())
        .await
        .unwrap_err();
    assert!(
        matches!(e, LiveError::PeerNotBuilt { client: "rdkafka" }),
        "{e}"
    );
}

#[cfg(feature = "peers")]
mod broker {
    use super::*;
    use crate::live::args::ConsumeSpec;
    use crate::live::report::Value;
    use crate::live::setup;

    fn bootstrap() -> String {
        ::tests::cluster(::tests::ClusterSpec::default())
            .bootstrap()
            .to_string()
    }

    fn int(r: &crate::live::report::Report, key: &str) -> u64 {
        match r.get(key) {
            Some(Value::Int(n)) => *n,
            other => panic!("{key}: {other:?}"),
        }
    }

    fn num(r: &crate::live::report::Report, key: &str) -> f64 {
        match r.get(key) {
            Some(Value::Num(n)) => *n,
            Some(Value::Int(n)) => *n as f64,
            other => panic!("{key}: {other:?}"),
        }
    }

    /// Every peer producer writes into one topic, every peer consumer reads it back: the
    /// counts, sizes and figures in the reports are the real ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_peer_produces_and_every_peer_consumes() {
        let bootstrap = bootstrap();
        let topic = ::tests::unique_topic("live-peers");
        let records = 3_000;
        let producers = [
            "ours",
            "ours-future",
            "rdkafka",
            "krafka",
            "confluent-kafka",
            "rskafka",
        ];
        for client in producers {
            let spec = produce_spec(Some(bootstrap.clone()), &topic, records);
            let (r, failure) = clients::produce(client, spec, bootstrap.clone())
                .await
                .unwrap_or_else(|e| panic!("{client}: {e}"));
            assert!(failure.is_none(), "{client}: {failure:?}");
            assert_eq!(int(&r, "acked"), records, "{client}");
            assert_eq!(int(&r, "failed"), 0, "{client}");
            assert_eq!(int(&r, "partitions"), 3, "{client}");
            assert!(num(&r, "records_per_sec") > 0.0, "{client}");
            // CPU time is read in 10 ms ticks: 3000 records may take less than one.
            assert!(num(&r, "cpu_ns_per_record") >= 0.0, "{client}");
            assert!(num(&r, "elapsed_s") > 0.0, "{client}");
            assert!(num(&r, "p99_ms") >= num(&r, "p50_ms"), "{client}");
            let note = r.get("note");
            assert_eq!(
                matches!(note, Some(Value::Str(_))),
                client == "rskafka",
                "{client}: {note:?}"
            );
        }
        // What the producers wrote is in the topic: the measured records and the warm-up.
        let admin = setup::connect(&bootstrap).await.unwrap();
        let have = setup::record_count(&admin, &topic).await.unwrap();
        assert_eq!(have, producers.len() as u64 * (records + 100));

        for client in [
            "rdkafka",
            "rdkafka-stream",
            "krafka",
            "confluent-kafka",
            "rskafka",
        ] {
            let spec = ConsumeSpec {
                common: Common {
                    bootstrap: Some(bootstrap.clone()),
                    topic: topic.clone(),
                    records: have,
                    timeout: Duration::from_secs(120),
                },
            };
            let r = clients::consume(client, spec, bootstrap.clone())
                .await
                .unwrap_or_else(|e| panic!("{client}: {e}"));
            assert_eq!(int(&r, "records"), have, "{client}");
            assert_eq!(int(&r, "size"), 100, "{client}");
            assert!(num(&r, "peak_rss_mb") > 1.0, "{client}");
        }

        // One more record than the topic holds: refused before reading, not a hang.
        let spec = ConsumeSpec {
            common: Common {
                bootstrap: Some(bootstrap.clone()),
                topic: topic.clone(),
                records: have + 1,
                timeout: Duration::from_secs(120),
            },
        };
        let e = clients::consume("rdkafka", spec, bootstrap.clone())
            .await
            .unwrap_err();
        assert!(matches!(e, LiveError::TopicTooSmall { .. }), "{e}");
    }

    /// lz4 and zstd, acks=1 without idempotence: accepted by every peer that can, and
    /// rskafka says in its note what it did not apply.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compression_and_acks_reach_every_peer() {
        let bootstrap = bootstrap();
        for compression in [Compression::Lz4, Compression::Zstd] {
            let topic = ::tests::unique_topic("live-codec");
            for client in ["ours", "rdkafka", "krafka", "confluent-kafka", "rskafka"] {
                let mut spec = produce_spec(Some(bootstrap.clone()), &topic, 1_000);
                spec.compression = compression;
                spec.acks = Acks::Leader;
                spec.idempotent = false;
                let (r, failure) = clients::produce(client, spec, bootstrap.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{client}: {e}"));
                assert!(failure.is_none(), "{client}: {failure:?}");
                assert_eq!(int(&r, "acked"), 1_000);
                if client == "rskafka" {
                    let Some(Value::Str(note)) = r.get("note") else {
                        panic!("rskafka without a note")
                    };
                    assert!(note.contains("acks=all"), "{note}");
                }
            }
            let admin = setup::connect(&bootstrap).await.unwrap();
            let have = setup::record_count(&admin, &topic).await.unwrap();
            let spec = ConsumeSpec {
                common: Common {
                    bootstrap: Some(bootstrap.clone()),
                    topic: topic.clone(),
                    records: have,
                    timeout: Duration::from_secs(120),
                },
            };
            let r = clients::consume("krafka", spec, bootstrap.clone())
                .await
                .unwrap();
            assert_eq!(int(&r, "records"), 5 * 1_100);
        }
    }
}
