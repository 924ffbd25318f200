//! `kafka_producer::Producer` against a real one-node Kafka (KRaft): round trips in every
//! codec read back by kcat, keyed placement identical to Kafka's Java producer, back-pressure,
//! synchronous sends without linger, and transactions (read_committed readers see committed
//! records once and aborted ones never; a second producer with the same transactional.id
//! fences the first).

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::Duration;

use kafka_core::client::{Client, ClientConfig, Target};
use kafka_core::codec::compression::Compression;
use kafka_core::KafkaCode;
use kafka_producer::{
    partition_for_key, ConsumerGroupMetadata, Error, Outcome, Producer, ProducerConfig,
    ProducerRecord,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tests::{cluster, unique_topic, Cluster, ClusterSpec};

mod metrics_support;
use metrics_support::Capture;

fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::default())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let client = Client::connect(ClientConfig::new([bootstrap]).unwrap())
        .await
        .expect("connect");
    let resp = client
        .send_to(
            Target::Controller,
            CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)])
                .with_timeout_ms(30_000),
        )
        .await
        .expect("CreateTopics");
    assert_eq!(
        KafkaCode::from_i16(resp.topics[0].error_code),
        KafkaCode::None
    );
    for _ in 0..100 {
        let meta = client.refresh_metadata(&[topic]).await.unwrap();
        if (0..partitions).all(|p| meta.leader(topic, p).is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leaders for {topic}");
}

/// kcat's view of a topic: `partition|offset|key|value` per record.
fn kcat_read(bootstrap: &str, topic: &str, extra: &[&str]) -> Vec<String> {
    tests::kcat_read(bootstrap, topic, extra, "%p|%o|%k|%s\n")
}

fn config(kafka: &Cluster) -> ProducerConfig {
    ProducerConfig::new([kafka.bootstrap()]).unwrap()
}

#[test]
fn round_trip_in_every_codec_read_back_by_kcat() {
    let kafka = kafka();
    runtime().block_on(async {
        for codec in Compression::ALL {
            let topic = unique_topic(&format!("produce-{}", codec.name()));
            create_topic(kafka.bootstrap(), &topic, 3).await;
            let producer = Producer::new(config(kafka).compression(codec))
                .await
                .unwrap();
            let mut futures = Vec::new();
            for i in 0..300 {
                let mut r =
                    ProducerRecord::new(topic.clone(), format!("value-{i}-{}", "x".repeat(i % 50)))
                        .key(format!("key-{}", i % 17))
                        .header("h", format!("{i}"));
                if i % 50 == 0 {
                    r.value = None;
                }
                futures.push((i, producer.send(r).await.unwrap()));
            }
            let mut acked = BTreeMap::new();
            for (i, f) in futures {
                let meta = f
                    .await
                    .unwrap_or_else(|e| panic!("{codec:?} record {i}: {e}"));
                assert!(meta.offset >= 0);
                assert_eq!(&*meta.topic, topic.as_str());
                assert!(
                    acked.insert((meta.partition, meta.offset), i).is_none(),
                    "two records at one offset"
                );
            }
            producer.close(Duration::from_secs(10)).await.unwrap();
            let stats = producer.stats();
            assert_eq!(stats.records_acked, 300, "{codec:?}: {stats:?}");
            assert_eq!(stats.batches_failed, 0);

            let lines = kcat_read(kafka.bootstrap(), &topic, &[]);
            assert_eq!(
                lines.len(),
                300,
                "{codec:?}: kcat read {} records",
                lines.len()
            );
            for line in lines {
                let mut f = line.splitn(4, '|');
                let p: i32 = f.next().unwrap().parse().unwrap();
                let o: i64 = f.next().unwrap().parse().unwrap();
                let k = f.next().unwrap();
                let v = f.next().unwrap();
                let i = acked[&(p, o)];
                assert_eq!(k, format!("key-{}", i % 17));
                if i % 50 == 0 {
                    assert_eq!(v, "NULL");
                } else {
                    assert_eq!(v, format!("value-{i}-{}", "x".repeat(i % 50)));
                }
                // Keyed records go where murmur2 says.
                assert_eq!(p, partition_for_key(k.as_bytes(), 3));
            }
        }
    });
}

#[test]
fn keyed_records_land_where_the_java_producer_puts_them() {
    let kafka = kafka();
    let rt = runtime();
    let java_topic = unique_topic("java-keys");
    let our_topic = unique_topic("our-keys");
    rt.block_on(async {
        create_topic(kafka.bootstrap(), &java_topic, 7).await;
        create_topic(kafka.bootstrap(), &our_topic, 7).await;
    });
    let keys: Vec<String> = (0..200).map(|i| format!("user-{i}-{}", i * 7919)).collect();
    let input: String = keys.iter().map(|k| format!("{k}:v\n")).collect();
    let mut child = Command::new(tests::kafka_script())
        .args([
            "tool",
            "console-producer",
            "--bootstrap-server",
            kafka.bootstrap(),
            "--topic",
        ])
        .arg(&java_topic)
        .args([
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("console producer");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "Java console producer failed"
    );
    let java: HashMap<String, i32> = kcat_read(kafka.bootstrap(), &java_topic, &[])
        .into_iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '|').collect();
            (f[2].to_string(), f[0].parse().unwrap())
        })
        .collect();
    assert_eq!(java.len(), keys.len());
    rt.block_on(async {
        let producer = Producer::new(config(kafka)).await.unwrap();
        let mut distinct = std::collections::HashSet::new();
        for k in &keys {
            let meta = producer
                .send(ProducerRecord::new(our_topic.clone(), "v").key(k.clone()))
                .await
                .unwrap()
                .await
                .unwrap();
            assert_eq!(meta.partition, java[k], "key {k}");
            distinct.insert(meta.partition);
        }
        assert_eq!(distinct.len(), 7, "the keys spread over every partition");
        producer.close(Duration::from_secs(10)).await.unwrap();
    });
}

#[test]
fn full_buffer_blocks_send_until_max_block_then_drains() {
    let kafka = kafka();
    runtime().block_on(async {
        let topic = unique_topic("backpressure");
        create_topic(kafka.bootstrap(), &topic, 1).await;
        // Batches wait for a long linger, so the buffer fills and stays full.
        let producer = Producer::new(
            config(kafka)
                .buffer_memory(64 * 1024)
                .batch_size(1024 * 1024)
                .linger(Duration::from_secs(30))
                .max_block(Duration::from_millis(300))
                .delivery_timeout(Duration::from_secs(120)),
        )
        .await
        .unwrap();
        let mut futures = Vec::new();
        let blocked = loop {
            match producer
                .send(ProducerRecord::new(topic.clone(), vec![b'x'; 1000]))
                .await
            {
                Ok(f) => futures.push(f),
                Err(e) => break e,
            }
            assert!(futures.len() < 1000, "send never blocked");
        };
        assert!(
            matches!(
                blocked,
                Error::BlockTimeout {
                    what: "buffer.memory",
                    ..
                }
            ),
            "{blocked:?}"
        );
        assert_eq!(blocked.outcome(), Outcome::NotPersisted);
        assert!(
            futures.len() > 30 && futures.len() < 70,
            "{} records fit",
            futures.len()
        );
        assert!(producer.stats().blocked_sends >= 1);
        // flush sends them without waiting for linger; then there is room again.
        producer.flush().await.unwrap();
        for f in futures {
            f.await.unwrap();
        }
        producer
            .send(ProducerRecord::new(topic.clone(), vec![b'y'; 1000]))
            .await
            .expect("room after the flush")
            .await
            .unwrap();
        producer.close(Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            kcat_read(kafka.bootstrap(), &topic, &[]).len(),
            producer.stats().records_acked as usize
        );
    });
}

/// `send_with_callback`: every callback is called exactly once, after its ack, with the
/// offset kcat then reads that record at; keyless records fill each partition's offsets
/// without a gap.
#[test]
fn callbacks_report_each_record_once_with_the_offset_it_was_written_at() {
    let kafka = kafka();
    runtime().block_on(async {
        let topic = unique_topic("callbacks");
        create_topic(kafka.bootstrap(), &topic, 3).await;
        let producer = Producer::new(config(kafka).batch_size(2048)).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let n = 2_000;
        for i in 0..n {
            let tx = tx.clone();
            producer
                .send_with_callback(
                    ProducerRecord::new(topic.clone(), format!("cb-{i}")),
                    move |r| tx.send((i, r)).expect("receiver alive"),
                )
                .await
                .unwrap();
        }
        drop(tx);
        producer.flush().await.unwrap();
        let mut at = BTreeMap::new();
        let mut per_partition: HashMap<i32, Vec<i64>> = HashMap::new();
        while let Some((i, r)) = rx.recv().await {
            let meta = r.unwrap_or_else(|e| panic!("record {i}: {e}"));
            assert_eq!(&*meta.topic, topic.as_str());
            assert!(
                at.insert(i, (meta.partition, meta.offset)).is_none(),
                "{i} twice"
            );
            per_partition
                .entry(meta.partition)
                .or_default()
                .push(meta.offset);
        }
        assert_eq!(at.len(), n, "every callback called");
        for offsets in per_partition.values_mut() {
            offsets.sort_unstable();
            let want: Vec<i64> = (0..offsets.len() as i64).collect();
            assert_eq!(*offsets, want, "offsets without gaps");
        }
        producer.close(Duration::from_secs(10)).await.unwrap();
        let lines = kcat_read(kafka.bootstrap(), &topic, &[]);
        assert_eq!(lines.len(), n);
        for line in lines {
            let mut f = line.splitn(4, '|');
            let p: i32 = f.next().unwrap().parse().unwrap();
            let o: i64 = f.next().unwrap().parse().unwrap();
            let v = f.nth(1).unwrap();
            let i: usize = v.strip_prefix("cb-").unwrap().parse().unwrap();
            assert_eq!(at[&i], (p, o), "record {i}");
        }
    });
}

#[test]
fn send_and_wait_does_not_pay_the_linger() {
    let kafka = kafka();
    runtime().block_on(async {
        let topic = unique_topic("sync-send");
        create_topic(kafka.bootstrap(), &topic, 1).await;
        let producer = Producer::new(
            config(kafka)
                .linger(Duration::from_secs(600))
                .delivery_timeout(Duration::from_secs(900)),
        )
        .await
        .unwrap();
        // With a 10-minute linger, only an immediate send can finish within the minute.
        let meta = tokio::time::timeout(
            Duration::from_secs(60),
            producer.send_and_wait(ProducerRecord::new(topic.clone(), "now")),
        )
        .await
        .expect("send_and_wait waited for linger.ms")
        .unwrap();
        assert_eq!(meta.offset, 0);
        producer.close(Duration::from_secs(10)).await.unwrap();
    });
}

#[test]
fn metrics_count_acked_records_and_bytes_and_time_requests() {
    let kafka = kafka();
    let m = Capture::default();
    m.run(async {
        let topic = unique_topic("produce-metrics");
        create_topic(kafka.bootstrap(), &topic, 2).await;
        let producer = Producer::new(config(kafka)).await.unwrap();
        let (count, size) = (250, 100);
        let mut futures = Vec::new();
        for i in 0..count {
            let r = ProducerRecord::new(topic.clone(), vec![b'v'; size]).key(format!("{i}"));
            futures.push(producer.send(r).await.unwrap());
        }
        for f in futures {
            f.await.unwrap();
        }
        producer.close(Duration::from_secs(10)).await.unwrap();
        let stats = producer.stats();
        assert_eq!(m.counter("kafka_producer_records_acked_total"), count);
        assert_eq!(stats.records_acked, count);
        let bytes = m.counter("kafka_producer_bytes_acked_total");
        assert_eq!(bytes, stats.bytes_acked);
        // Uncompressed batches: at least every value, plus keys and framing.
        assert!(bytes > count * size as u64, "{bytes} bytes acked");
        let latencies = m.histogram("kafka_producer_request_latency_seconds");
        assert!(!latencies.is_empty(), "no request latency samples");
        assert_eq!(latencies.len() as u64, stats.request_count);
        assert!(latencies.iter().all(|&s| (0.0..30.0).contains(&s)));
        let total: f64 = latencies.iter().sum();
        assert!((total - stats.request_latency_total.as_secs_f64()).abs() < 1e-3);
    });
}

#[test]
fn bad_records_and_config_are_typed_errors() {
    let kafka = kafka();
    runtime().block_on(async {
        let topic = unique_topic("bad-input");
        create_topic(kafka.bootstrap(), &topic, 2).await;
        let producer = Producer::new(config(kafka).max_request_size(10_000))
            .await
            .unwrap();
        let e = producer
            .send(ProducerRecord::new(topic.clone(), vec![0u8; 20_000]))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::RecordTooLarge { .. }), "{e:?}");
        let e = producer
            .send(ProducerRecord::new(topic.clone(), "v").partition(2))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidPartition { count: 2, .. }),
            "{e:?}"
        );
        producer.close(Duration::from_secs(10)).await.unwrap();
        let e = producer
            .send(ProducerRecord::new(topic.clone(), "late"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Closed), "{e:?}");
        let e = Producer::new(config(kafka).acks(kafka_producer::Acks::Leader))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Config { .. }),
            "idempotence with acks=1: {e:?}"
        );
    });
}

/// The group's committed offset of partition 0 of `topic`, as Kafka's own group tool reports.
fn committed_offset(kafka: &Cluster, group: &str, topic: &str) -> Option<i64> {
    let out = kafka.tool_ok(
        "consumer-groups",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "--describe",
            "--group",
            group,
        ],
    );
    out.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() > 3 && cols[1] == topic && cols[2] == "0")
            .then(|| cols[3].parse().ok())
            .flatten()
    })
}

fn txn_config(kafka: &Cluster, id: &str) -> ProducerConfig {
    config(kafka).transactional_id(id)
}

#[test]
fn transactions_commit_once_abort_invisibly_and_fence_zombies() {
    let kafka = kafka();
    runtime().block_on(async {
        let topic = unique_topic("txn");
        create_topic(kafka.bootstrap(), &topic, 2).await;
        let txn_id = unique_topic("txn-id");
        let producer = Producer::new(txn_config(kafka, &txn_id)).await.unwrap();
        // Sending outside a transaction is refused.
        let e = producer
            .send(ProducerRecord::new(topic.clone(), "early"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::TransactionState(_)), "{e:?}");
        producer.init_transactions().await.unwrap();
        // Kafka 4.x clusters finalize transaction.version 2 (KIP-890); 3.9 has only v1.
        assert_eq!(
            producer.uses_transactions_v2(),
            kafka.version_at_least(4, 0),
            "transaction protocol v2 exactly where the broker has it"
        );

        producer.begin_transaction().unwrap();
        let mut acks = Vec::new();
        for i in 0..50 {
            acks.push(
                producer
                    .send(
                        ProducerRecord::new(topic.clone(), format!("committed-{i}"))
                            .key(format!("{i}")),
                    )
                    .await
                    .unwrap(),
            );
        }
        // Consumed offsets commit with the transaction (KIP-447 group metadata).
        let group = unique_topic("txn-group");
        let group_meta = ConsumerGroupMetadata::new(group.clone());
        producer
            .send_offsets_to_transaction(&[(topic.clone(), 0, 42, None)], &group_meta)
            .await
            .unwrap();
        producer.commit_transaction().await.unwrap();
        for a in acks.drain(..) {
            a.await.expect("committed records are acknowledged");
        }
        assert_eq!(committed_offset(kafka, &group, &topic), Some(42));

        producer.begin_transaction().unwrap();
        producer
            .send_offsets_to_transaction(&[(topic.clone(), 0, 99, None)], &group_meta)
            .await
            .unwrap();
        let mut aborted = Vec::new();
        for i in 0..30 {
            aborted.push(
                producer
                    .send(
                        ProducerRecord::new(topic.clone(), format!("aborted-{i}"))
                            .key(format!("{i}")),
                    )
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await.unwrap();
        producer.abort_transaction().await.unwrap();
        for f in aborted {
            // Written to the log (then aborted by the markers), or never sent.
            let _ = f.await;
        }

        producer.begin_transaction().unwrap();
        for i in 0..20 {
            acks.push(
                producer
                    .send(ProducerRecord::new(topic.clone(), format!("second-{i}")))
                    .await
                    .unwrap(),
            );
        }
        producer.commit_transaction().await.unwrap();
        for a in acks.drain(..) {
            a.await.expect("committed records are acknowledged");
        }

        assert_eq!(
            committed_offset(kafka, &group, &topic),
            Some(42),
            "offsets of an aborted transaction are not committed"
        );

        // A second instance with the same transactional.id fences the first.
        let zombie = producer;
        let fresh = Producer::new(txn_config(kafka, &txn_id)).await.unwrap();
        fresh.init_transactions().await.unwrap();
        zombie.begin_transaction().unwrap();
        let sent = zombie
            .send(ProducerRecord::new(topic.clone(), "zombie"))
            .await
            .unwrap();
        let zombie_result = zombie.commit_transaction().await;
        let e = match zombie_result {
            Err(e) => e,
            Ok(()) => panic!("the fenced producer committed"),
        };
        assert!(
            matches!(
                e,
                Error::Fenced { .. } | Error::Fatal { .. } | Error::AbortableTransaction { .. }
            ),
            "{e:?}"
        );
        assert!(sent.await.is_err(), "the zombie's record was acknowledged");
        let e = zombie
            .send(ProducerRecord::new(topic.clone(), "after fencing"))
            .await
            .unwrap_err();
        assert!(
            e.is_fatal() || matches!(e, Error::AbortableTransaction { .. }),
            "{e:?}"
        );

        fresh.begin_transaction().unwrap();
        let fresh_ack = fresh
            .send(ProducerRecord::new(topic.clone(), "fresh"))
            .await
            .unwrap();
        fresh.commit_transaction().await.unwrap();
        fresh_ack.await.unwrap();
        fresh.close(Duration::from_secs(10)).await.unwrap();

        // EndTxn answers once the commit is prepared; the markers that let read_committed
        // readers past the transaction follow. Read until the last commit shows (20 s).
        let mut values: Vec<String> = Vec::new();
        for _ in 0..40 {
            let committed = kcat_read(
                kafka.bootstrap(),
                &topic,
                &["-X", "isolation.level=read_committed"],
            );
            values = committed
                .iter()
                .map(|l| l.splitn(4, '|').nth(3).unwrap().to_string())
                .collect();
            if values.iter().any(|v| v == "fresh") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut want: Vec<String> = (0..50).map(|i| format!("committed-{i}")).collect();
        want.extend((0..20).map(|i| format!("second-{i}")));
        want.push("fresh".into());
        let mut got = values.clone();
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "read_committed sees each committed record once, nothing else"
        );
        // read_uncommitted sees the aborted records too: they were in the log.
        let all = kcat_read(
            kafka.bootstrap(),
            &topic,
            &["-X", "isolation.level=read_uncommitted"],
        );
        assert!(
            all.iter().any(|l| l.contains("aborted-")),
            "aborted records reached the log"
        );
    });
}
