//! `kafka_consumer::Consumer` against a real one-node Kafka (KRaft): manual assignment over
//! every codec, the batch and stream paths, seeks (offset, timestamp), commits and restarts,
//! the memory budget under a stalled application, read_committed over real transactions
//! (raw transactional requests with an abort, and Kafka's Java producer-perf-test), classic
//! groups of our consumers with members joining and leaving, a mixed group with kcat
//! (librdkafka) and Kafka's Java console consumer, and a group of ours and the Java console
//! consumer on the eager sticky assignor.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use kafka_consumer::{
    AssignorKind, Consumer, ConsumerConfig, ConsumerError, IsolationLevel, OffsetReset,
    TopicPartition,
};
use kafka_core::client::{Client, ClientConfig, ConnectionClass, Target};
use kafka_core::codec::compression::{Compression, Compressor};
use kafka_core::codec::records::{BatchOptions, Header, RecordBatchBuilder};
use kafka_core::net::ConnectionConfig;
use kafka_core::KafkaCode;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, CreateTopicsRequest, EndTxnRequest, InitProducerIdRequest,
    ProduceRequest, ProducerId, TopicName, TransactionalId,
};
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

fn client_config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new([bootstrap])
        .unwrap()
        .with_connection(
            ConnectionConfig::default()
                .with_client_id("consumer-tests")
                .with_request_timeout(Duration::from_secs(30)),
        )
        .with_default_api_timeout(Duration::from_secs(60))
}

fn base(bootstrap: &str) -> kafka_consumer::ConsumerConfigBuilder {
    ConsumerConfig::builder(client_config(bootstrap))
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(200))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn create_topic(client: &Client, topic: &str, partitions: i32) {
    let resp = client
        .send_to(
            Target::AnyBroker,
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

/// The value of record `i` of partition `p` (keys are `p:i`).
fn value_of(p: i32, i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("p{p}-r{i}-").into_bytes();
    while v.len() < size {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    v
}

/// Writes `count` records to `topic`/`partition` in batches of `per_batch`, cycling through
/// the codecs, with timestamps `ts0 + i`; record `i` has key `p:i`, value
/// [`value_of`] and one header.
#[allow(clippy::too_many_arguments)]
async fn produce(
    client: &Client,
    topic: &str,
    partition: i32,
    count: usize,
    per_batch: usize,
    size: usize,
    ts0: i64,
    codecs: &[Compression],
) {
    let mut compressor = Compressor::new();
    let mut i = 0;
    let mut n = 0;
    while i < count {
        let mut b = RecordBatchBuilder::new(BatchOptions {
            compression: codecs[n % codecs.len()],
            ..BatchOptions::default()
        });
        n += 1;
        let end = (i + per_batch).min(count);
        for j in i..end {
            let key = format!("{partition}:{j}");
            b.append(
                ts0 + j as i64,
                Some(key.as_bytes()),
                Some(&value_of(partition, j, size)),
                &[Header {
                    key: b"h",
                    value: Some(b"v"),
                }],
            )
            .unwrap();
        }
        let batch = b.seal(&mut compressor).unwrap();
        send_batch(client, topic, partition, batch, None).await;
        i = end;
    }
}

async fn send_batch(
    client: &Client,
    topic: &str,
    partition: i32,
    batch: bytes::Bytes,
    txn: Option<&str>,
) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_string(t.into()))))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    // Right after topic creation the leader may not know it is the leader yet: retry.
    for _ in 0..50 {
        let (_, conn) = client
            .connection(
                &Target::leader_of(topic, partition),
                ConnectionClass::Produce,
            )
            .await
            .unwrap();
        // v11: topics by name (v13 names them by id).
        let version = conn.max_version(0).unwrap().min(11);
        let resp = conn.send_at(req.clone(), version).await.unwrap();
        let code = KafkaCode::from_i16(resp.responses[0].partition_responses[0].error_code);
        match code {
            KafkaCode::None => return,
            c if c.is_retriable() => {
                client.refresh_metadata(&[topic]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            c => panic!("produce to {topic}-{partition}: {c}"),
        }
    }
    panic!("produce to {topic}-{partition} kept failing");
}

async fn setup(topic: &str, partitions: i32) -> Client {
    let client = Client::connect(client_config(kafka().bootstrap()))
        .await
        .unwrap();
    create_topic(&client, topic, partitions).await;
    client
}

fn all_partitions(topic: &str, n: i32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

/// Receives until `want` records arrived (failing after `limit`), checking per-partition
/// order; returns the (partition, offset, key) of each.
async fn recv_n(c: &mut Consumer, want: usize, limit: Duration) -> Vec<(i32, i64, String)> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut last: HashMap<(String, i32), i64> = HashMap::new();
    while out.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} records within {limit:?}",
            out.len()
        );
        for r in c.poll(Duration::from_millis(500)).await.unwrap() {
            if let Some(prev) = last.insert((r.topic.to_string(), r.partition), r.offset) {
                assert!(r.offset > prev, "offsets out of order on {}", r.partition);
            }
            let key = r
                .key
                .as_ref()
                .map(|k| String::from_utf8(k.to_vec()).unwrap())
                .unwrap_or_default();
            out.push((r.partition, r.offset, key));
        }
    }
    out
}

#[test]
fn assign_reads_every_record_of_every_codec_in_order() {
    runtime().block_on(async {
        let topic = unique_topic("cons-assign");
        let client = setup(&topic, 3).await;
        let codecs = [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
            Compression::Gzip,
        ];
        for p in 0..3 {
            produce(&client, &topic, p, 500, 37, 100, now_ms(), &codecs).await;
        }
        let mut c = Consumer::connect(base(kafka().bootstrap()).build().unwrap())
            .await
            .unwrap();
        c.assign(all_partitions(&topic, 3)).unwrap();
        let mut seen: HashMap<i32, Vec<i64>> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.values().map(Vec::len).sum::<usize>() < 1500 {
            assert!(Instant::now() < deadline, "timed out");
            let r = c.recv().await.unwrap();
            let i = r.offset as usize;
            assert_eq!(
                r.key.as_deref(),
                Some(format!("{}:{i}", r.partition).as_bytes())
            );
            assert_eq!(r.value.as_deref(), Some(&value_of(r.partition, i, 100)[..]));
            assert_eq!(r.headers.len(), 1);
            assert_eq!(&r.headers[0].0[..], b"h");
            seen.entry(r.partition).or_default().push(r.offset);
        }
        for p in 0..3 {
            let offs = &seen[&p];
            assert_eq!(offs, &(0..500).collect::<Vec<i64>>(), "partition {p}");
        }
        // Nothing more, positions at the end, lag zero.
        assert!(c.poll(Duration::from_millis(700)).await.unwrap().is_empty());
        for rep in c.describe() {
            assert_eq!(rep.position, Some(500), "{:?}", rep);
            assert_eq!(rep.high_watermark, 500);
            assert_eq!(rep.lag, Some(0));
        }
        let mem = c.memory();
        assert!(
            mem.peak > 0 && mem.peak <= mem.limit - mem.decompression_room,
            "{mem:?}"
        );
    });
}

#[test]
fn batch_path_and_stream_agree() {
    runtime().block_on(async {
        let topic = unique_topic("cons-batch");
        let client = setup(&topic, 2).await;
        for p in 0..2 {
            produce(
                &client,
                &topic,
                p,
                300,
                50,
                20,
                now_ms(),
                &[Compression::Lz4],
            )
            .await;
        }
        let mut c = Consumer::connect(base(kafka().bootstrap()).build().unwrap())
            .await
            .unwrap();
        c.assign(all_partitions(&topic, 2)).unwrap();
        let mut n = 0;
        let mut per: HashMap<i32, i64> = HashMap::new();
        while n < 600 {
            for b in c.poll_batches(Duration::from_secs(10)).await.unwrap() {
                let p = b.topic_partition().partition;
                for r in b.records() {
                    let r = r.unwrap();
                    let expected = per.entry(p).or_insert(0);
                    assert_eq!(r.offset(), *expected);
                    *expected += 1;
                    assert_eq!(
                        r.value().unwrap(),
                        &value_of(p, r.offset() as usize, 20)[..]
                    );
                    n += 1;
                }
            }
        }
        assert_eq!(n, 600);
        // The stream from the start again, via seek.
        for tp in all_partitions(&topic, 2) {
            c.seek(&tp, 100).unwrap();
        }
        let items: Vec<_> = c.stream().take(400).collect().await;
        let mut per: HashMap<i32, Vec<i64>> = HashMap::new();
        for r in items {
            let r = r.unwrap();
            per.entry(r.partition).or_default().push(r.offset);
        }
        for p in 0..2 {
            assert_eq!(per[&p], (100..300).collect::<Vec<_>>());
        }
    });
}

#[test]
fn seek_to_timestamp_beginning_and_end() {
    runtime().block_on(async {
        let topic = unique_topic("cons-seek");
        let client = setup(&topic, 1).await;
        let ts0 = now_ms() - 100_000;
        // Offsets 0..200 with timestamps ts0 + i.
        produce(&client, &topic, 0, 200, 20, 10, ts0, &[Compression::None]).await;
        let mut c = Consumer::connect(base(kafka().bootstrap()).build().unwrap())
            .await
            .unwrap();
        let tp = TopicPartition::new(&topic, 0);
        c.assign([tp.clone()]).unwrap();
        c.seek_to_timestamp(&[(tp.clone(), ts0 + 123)])
            .await
            .unwrap();
        assert_eq!(c.position(&tp).unwrap(), Some(123));
        let r = c.recv().await.unwrap();
        assert_eq!((r.offset, r.timestamp), (123, ts0 + 123));
        c.seek_to_end(std::slice::from_ref(&tp)).await.unwrap();
        assert_eq!(c.position(&tp).unwrap(), Some(200));
        // A timestamp after every record: the end.
        c.seek_to_timestamp(&[(tp.clone(), now_ms() + 1_000_000)])
            .await
            .unwrap();
        assert_eq!(c.position(&tp).unwrap(), Some(200));
        c.seek_to_beginning(std::slice::from_ref(&tp))
            .await
            .unwrap();
        assert_eq!(c.recv().await.unwrap().offset, 0);
        // Seeking past the end with auto.offset.reset=none is a typed error, not a hang.
        let mut strict = Consumer::connect(
            base(kafka().bootstrap())
                .auto_offset_reset(OffsetReset::None)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        strict.assign([tp.clone()]).unwrap();
        let e = strict.poll(Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e, ConsumerError::NoOffset { .. }), "{e}");
        strict.seek(&tp, 5000).unwrap();
        strict.resume(std::slice::from_ref(&tp)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match strict.poll(Duration::from_millis(500)).await {
                Err(ConsumerError::NoOffset { offset, .. }) => {
                    assert_eq!(offset, Some(5000));
                    break;
                }
                Ok(v) => assert!(v.is_empty()),
                Err(e) => panic!("{e}"),
            }
            assert!(Instant::now() < deadline, "no out-of-range error");
        }
    });
}

#[test]
fn commits_survive_a_restart_and_auto_commit_commits_what_was_handed_out() {
    runtime().block_on(async {
        let topic = unique_topic("cons-commit");
        let group = unique_topic("g-commit");
        let client = setup(&topic, 2).await;
        for p in 0..2 {
            produce(
                &client,
                &topic,
                p,
                100,
                10,
                10,
                now_ms(),
                &[Compression::None],
            )
            .await;
        }
        let tps = all_partitions(&topic, 2);
        let cfg = || {
            base(kafka().bootstrap())
                .group_id(group.clone())
                .enable_auto_commit(false)
                .max_poll_records(30)
                .build()
                .unwrap()
        };
        let mut c = Consumer::connect(cfg()).await.unwrap();
        c.assign(tps.clone()).unwrap();
        let got = recv_n(&mut c, 30, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 30);
        let mut handed: HashMap<i32, i64> = HashMap::new();
        for (p, o, _) in &got {
            handed.insert(*p, o + 1);
        }
        c.commit_sync().await.unwrap();
        let committed = c.committed(&tps).await.unwrap();
        for tp in &tps {
            // Exactly what was handed out (nothing for a partition not read yet... which
            // still commits its resolved position).
            let want = handed.get(&tp.partition).copied().unwrap_or(0);
            assert_eq!(committed[tp], Some(want), "{tp}");
        }
        drop(c);
        // A new consumer of the group resumes there.
        let mut c = Consumer::connect(cfg()).await.unwrap();
        c.assign(tps.clone()).unwrap();
        let rest = recv_n(&mut c, 200 - 30, Duration::from_secs(30)).await;
        let mut keys: HashSet<String> = got.iter().map(|(_, _, k)| k.clone()).collect();
        for (_, _, k) in rest {
            assert!(keys.insert(k.clone()), "{k} read twice");
        }
        assert_eq!(keys.len(), 200);

        // Auto-commit: only what poll returned.
        let group2 = unique_topic("g-auto");
        let mut c = Consumer::connect(
            base(kafka().bootstrap())
                .group_id(group2.clone())
                .auto_commit_interval(Duration::from_millis(100))
                .max_poll_records(7)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        let tp = TopicPartition::new(&topic, 0);
        c.assign([tp.clone()]).unwrap();
        let first = c.poll(Duration::from_secs(10)).await.unwrap();
        assert_eq!(first.len(), 7);
        tokio::time::sleep(Duration::from_millis(150)).await;
        // This poll auto-commits the 7 handed out before returning more.
        let _ = c.poll(Duration::from_millis(100)).await.unwrap();
        let mut other = Consumer::connect(
            base(kafka().bootstrap())
                .group_id(group2.clone())
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        other.assign([tp.clone()]).unwrap();
        let committed = other.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp].unwrap();
        assert!((7..=14).contains(&committed), "committed {committed}");
        c.close().await.unwrap();
        let committed = other.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp].unwrap();
        assert_eq!(
            committed % 7,
            0,
            "close commits exactly what was handed out"
        );
    });
}

#[test]
fn memory_stays_under_the_budget_while_the_application_stalls() {
    runtime().block_on(async {
        let topic = unique_topic("cons-mem");
        let client = setup(&topic, 6).await;
        // 6 x 3000 x 1 KiB: about 18 MiB, compressible (the budget counts what we hold,
        // decompressed batches included).
        for p in 0..6 {
            produce(
                &client,
                &topic,
                p,
                3000,
                200,
                1024,
                now_ms(),
                &[Compression::Lz4, Compression::None],
            )
            .await;
        }
        let budget = 4 * 1024 * 1024;
        let mut c = Consumer::connect(
            base(kafka().bootstrap())
                .memory_budget(budget)
                .max_partition_fetch_bytes(512 * 1024)
                .max_poll_records(50)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        c.assign(all_partitions(&topic, 6)).unwrap();
        let mut n = 0;
        let mut stalls = 0;
        while n < 18_000 {
            let got = c.poll(Duration::from_secs(10)).await.unwrap();
            assert!(!got.is_empty(), "stuck at {n}");
            n += got.len();
            let m = c.memory();
            assert!(
                m.held + m.reserved <= m.limit - m.decompression_room,
                "over budget: {m:?}"
            );
            if n % 3000 < 50 && stalls < 4 {
                // The application stalls; in-flight fetches land meanwhile.
                stalls += 1;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }
        assert_eq!(n, 18_000);
        let m = c.memory();
        assert!(m.peak <= budget - m.decompression_room, "{m:?}");
        // It did prefetch up to (near) the budget: the bound was exercised.
        assert!(m.peak >= 1024 * 1024, "{m:?}");
    });
}

/// A raw transaction: InitProducerId, AddPartitionsToTxn, Produce, EndTxn (TV1 versions,
/// as pre-KIP-890 clients do). Returns the producer id.
async fn transaction(
    client: &Client,
    tid: &str,
    topic: &str,
    values: &[&str],
    commit: bool,
    state: &mut Option<(i64, i16)>,
) {
    let tname = || TransactionalId(StrBytes::from_string(tid.to_string()));
    let target = Target::transaction(tid);
    let (pid, epoch) = match *state {
        Some(s) => s,
        None => {
            let mut got = None;
            for _ in 0..50 {
                let (_, conn) = client
                    .connection(&target, ConnectionClass::Admin)
                    .await
                    .unwrap();
                let r = conn
                    .send_at(
                        InitProducerIdRequest::default()
                            .with_transactional_id(Some(tname()))
                            .with_transaction_timeout_ms(60_000)
                            .with_producer_id(ProducerId(-1))
                            .with_producer_epoch(-1),
                        4,
                    )
                    .await
                    .unwrap();
                match KafkaCode::from_i16(r.error_code) {
                    KafkaCode::None => {
                        got = Some((r.producer_id.0, r.producer_epoch));
                        break;
                    }
                    c if c.is_retriable() || c == KafkaCode::ConcurrentTransactions => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    c => panic!("InitProducerId: {c}"),
                }
            }
            got.expect("InitProducerId")
        }
    };
    *state = Some((pid, epoch));
    for _ in 0..50 {
        let (_, conn) = client
            .connection(&target, ConnectionClass::Admin)
            .await
            .unwrap();
        let r = conn
            .send_at(
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(tname())
                    .with_v3_and_below_producer_id(ProducerId(pid))
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(vec![0])]),
                3,
            )
            .await
            .unwrap();
        let code = KafkaCode::from_i16(
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        );
        match code {
            KafkaCode::None => break,
            KafkaCode::ConcurrentTransactions => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            c => panic!("AddPartitionsToTxn: {c}"),
        }
    }
    let mut b = RecordBatchBuilder::new(BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 0,
        transactional: true,
        ..BatchOptions::default()
    });
    // Each transaction here starts a new sequence run: a fresh epoch would be cleaner,
    // but the same epoch with a continuing sequence is what a real producer does.
    let seq = SEQ.with(|s| {
        let mut m = s.lock().unwrap();
        let e = m.entry(pid).or_insert(0);
        let v = *e;
        *e += values.len() as i32;
        v
    });
    b.reset(BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional: true,
        ..BatchOptions::default()
    });
    for v in values {
        b.append(now_ms(), None, Some(v.as_bytes()), &[]).unwrap();
    }
    let batch = b.seal(&mut Compressor::new()).unwrap();
    send_batch(client, topic, 0, batch, Some(tid)).await;
    for _ in 0..50 {
        let (_, conn) = client
            .connection(&target, ConnectionClass::Admin)
            .await
            .unwrap();
        let r = conn
            .send_at(
                EndTxnRequest::default()
                    .with_transactional_id(tname())
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_committed(commit),
                4,
            )
            .await
            .unwrap();
        match KafkaCode::from_i16(r.error_code) {
            KafkaCode::None => return,
            KafkaCode::ConcurrentTransactions => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            c => panic!("EndTxn: {c}"),
        }
    }
    panic!("EndTxn never succeeded");
}

thread_local! {
    static SEQ: Mutex<HashMap<i64, i32>> = Mutex::new(HashMap::new());
}

#[test]
fn read_committed_hides_aborted_transactions_and_markers() {
    runtime().block_on(async {
        let topic = unique_topic("cons-txn");
        let client = setup(&topic, 1).await;
        let tid = unique_topic("tid");
        let mut st = None;
        // plain, committed txn, aborted txn, plain, committed txn
        produce(&client, &topic, 0, 2, 2, 5, now_ms(), &[Compression::None]).await;
        transaction(&client, &tid, &topic, &["c1", "c2"], true, &mut st).await;
        transaction(&client, &tid, &topic, &["a1", "a2", "a3"], false, &mut st).await;
        produce(&client, &topic, 0, 1, 1, 5, now_ms(), &[Compression::None]).await;
        transaction(&client, &tid, &topic, &["c3"], true, &mut st).await;
        let read = |iso| {
            let topic = topic.clone();
            async move {
                let mut c = Consumer::connect(
                    base(kafka().bootstrap())
                        .isolation_level(iso)
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap();
                c.assign([TopicPartition::new(&topic, 0)]).unwrap();
                let mut vals = Vec::new();
                loop {
                    let got = c.poll(Duration::from_secs(3)).await.unwrap();
                    if got.is_empty() {
                        break;
                    }
                    for r in got {
                        vals.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                    }
                }
                let pos = c.position(&TopicPartition::new(&topic, 0)).unwrap();
                (vals, pos)
            }
        };
        let (committed, pos) = read(IsolationLevel::ReadCommitted).await;
        let short: Vec<&str> = committed.iter().map(|v| &v[..2]).collect();
        assert_eq!(short, ["p0", "p0", "c1", "c2", "p0", "c3"], "{committed:?}");
        // 2 + (2+1) + (3+1) + 1 + (1+1) = 12: the position is past the last marker.
        assert_eq!(pos, Some(12));
        let (all, _) = read(IsolationLevel::ReadUncommitted).await;
        let short: Vec<&str> = all.iter().map(|v| &v[..2]).collect();
        assert_eq!(
            short,
            ["p0", "p0", "c1", "c2", "a1", "a2", "a3", "p0", "c3"]
        );
    });
}

#[test]
fn read_committed_over_our_transactional_producer() {
    runtime().block_on(async {
        let topic = unique_topic("cons-ourtxn");
        setup(&topic, 2).await;
        let producer = kafka_producer::Producer::new(
            kafka_producer::ProducerConfig::new([kafka().bootstrap()])
                .unwrap()
                .transactional_id(unique_topic("our-tid")),
        )
        .await
        .unwrap();
        producer.init_transactions().await.unwrap();
        let send = |v: String| kafka_producer::ProducerRecord::new(topic.clone(), v);
        let mut want = Vec::new();
        for round in 0..4 {
            producer.begin_transaction().unwrap();
            let mut acks = Vec::new();
            for i in 0..25 {
                acks.push(producer.send(send(format!("r{round}-{i}"))).await.unwrap());
            }
            if round % 2 == 0 {
                producer.commit_transaction().await.unwrap();
                for a in acks {
                    a.await.unwrap();
                }
                want.extend((0..25).map(|i| format!("r{round}-{i}")));
            } else {
                producer.flush().await.unwrap();
                producer.abort_transaction().await.unwrap();
            }
        }
        producer.close(Duration::from_secs(10)).await.unwrap();
        let mut c = Consumer::connect(
            base(kafka().bootstrap())
                .isolation_level(IsolationLevel::ReadCommitted)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        c.assign(all_partitions(&topic, 2)).unwrap();
        let mut got = Vec::new();
        loop {
            let recs = c.poll(Duration::from_secs(3)).await.unwrap();
            if recs.is_empty() {
                break;
            }
            for r in recs {
                got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "committed records exactly once, aborted ones never"
        );
    });
}

#[test]
fn read_committed_over_javas_transactional_producer() {
    let topic = unique_topic("cons-javatxn");
    runtime().block_on(async {
        setup(&topic, 1).await;
    });
    let k = kafka();
    k.tool_ok(
        "producer-perf-test",
        &[
            "--topic",
            &topic,
            "--num-records",
            "2000",
            "--record-size",
            "50",
            "--throughput",
            "-1",
            "--transactional-id",
            &unique_topic("java-tid"),
            "--transaction-duration-ms",
            "100",
            "--producer-props",
            &format!("bootstrap.servers={}", k.bootstrap()),
        ],
    );
    runtime().block_on(async {
        let mut c = Consumer::connect(
            base(k.bootstrap())
                .isolation_level(IsolationLevel::ReadCommitted)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        c.assign([TopicPartition::new(&topic, 0)]).unwrap();
        let got = recv_n(&mut c, 2000, Duration::from_secs(60)).await;
        assert_eq!(got.len(), 2000);
        assert!(c.poll(Duration::from_secs(1)).await.unwrap().is_empty());
    });
}

/// Three of our consumers in one group (one joins late, one leaves early) while records
/// flow: every record is processed, order kept per partition, few duplicates.
#[test]
fn group_of_three_with_members_joining_and_leaving_processes_everything() {
    for assignor in [AssignorKind::Range, AssignorKind::CooperativeSticky] {
        runtime().block_on(group_run(assignor));
    }
}

/// (key, partition, offset, member index) of one processed record.
type Seen = (String, i32, i64, usize);

async fn group_run(assignor: AssignorKind) {
    let topic = unique_topic("cons-group");
    let group = unique_topic("g-three");
    let client = setup(&topic, 6).await;
    // Records per partition in each of the producer's 8 rounds.
    const PER_ROUND: usize = 50;
    let total = 6 * 8 * PER_ROUND;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawn_member = |idx: usize, lifetime: Option<Duration>| {
        let seen = Arc::clone(&seen);
        let done = Arc::clone(&done);
        let topic = topic.clone();
        let cfg = base(kafka().bootstrap())
            .group_id(group.clone())
            .assignors(vec![assignor])
            .auto_commit_interval(Duration::from_millis(200))
            .heartbeat_interval(Duration::from_millis(500))
            .session_timeout(Duration::from_secs(10))
            .max_poll_records(20)
            .build()
            .unwrap();
        tokio::spawn(async move {
            let mut c = Consumer::connect(cfg).await.unwrap();
            c.subscribe([topic]).unwrap();
            let start = Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if lifetime.is_some_and(|l| start.elapsed() > l) {
                    break;
                }
                let got = c.poll(Duration::from_millis(200)).await.unwrap();
                let mut s = seen.lock().unwrap();
                for r in got {
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    s.push((key, r.partition, r.offset, idx));
                }
            }
            c.close().await.unwrap();
        })
    };
    let m0 = spawn_member(0, None);
    // Records flow while members come and go.
    let producer = {
        let client = client.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for round in 0..8 {
                for p in 0..6 {
                    let mut b = RecordBatchBuilder::new(BatchOptions::default());
                    for i in 0..PER_ROUND {
                        let n = round * PER_ROUND + i;
                        b.append(
                            now_ms(),
                            Some(format!("{p}:{n}").as_bytes()),
                            Some(b"x"),
                            &[],
                        )
                        .unwrap();
                    }
                    let batch = b.seal(&mut Compressor::new()).unwrap();
                    send_batch(&client, &topic, p, batch, None).await;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m1 = spawn_member(1, None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m2 = spawn_member(2, Some(Duration::from_secs(3)));
    producer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let distinct: HashSet<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
        if distinct.len() == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{assignor:?}: only {} of {total} records processed",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    m0.await.unwrap();
    m1.await.unwrap();
    m2.await.unwrap();
    let seen = seen.lock().unwrap();
    // Order per partition: within a member, offsets of a partition only go backwards when
    // the partition came back to it after a rebalance (a handful of times at most).
    let mut last: HashMap<(usize, i32), i64> = HashMap::new();
    let mut backwards = 0;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (key, p, off, idx) in seen.iter() {
        if let Some(prev) = last.insert((*idx, *p), *off) {
            if *off <= prev {
                backwards += 1;
            }
        }
        *count.entry(key).or_default() += 1;
    }
    assert!(
        backwards <= 12,
        "{assignor:?}: {backwards} out-of-order deliveries"
    );
    // A record is processed twice only when it was handed out after the last commit that
    // the broker accepted before its partition changed hands: members commit what they
    // handed out before giving partitions up (eager: before rejoining, in the generation
    // still current; cooperative: the revoked ones, in the new generation) and on close.
    // The one commit that can be refused is the close of the short-lived member racing a
    // rebalance (cooperative: it keeps handing out records while its join is pending, and
    // a commit between JoinGroup and SyncGroup gets REBALANCE_IN_PROGRESS). Auto-commit
    // runs every 200 ms, so that loses about what one producer round writes to its share
    // (two of the six partitions) at most. Usually there are none.
    let dups = count.values().filter(|&&c| c > 1).count();
    assert!(
        dups <= 2 * PER_ROUND,
        "{assignor:?}: {dups} records processed twice"
    );
    let members: HashSet<usize> = seen.iter().map(|s| s.3).collect();
    assert!(
        members.len() >= 2,
        "{assignor:?}: only members {members:?} got records"
    );
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kafka's Java console consumer in `group`, reading `topic` from the beginning, with
/// `extra` arguments; its stdout goes to `stdout`.
fn java_console_consumer(topic: &str, group: &str, extra: &[&str], stdout: Stdio) -> Killed {
    Killed(
        Command::new("bash")
            .arg(tests::kafka_script())
            .args([
                "tool",
                "console-consumer",
                "--bootstrap-server",
                kafka().bootstrap(),
                "--topic",
                topic,
                "--group",
                group,
                "--from-beginning",
            ])
            .args(extra)
            .current_dir(tests::repo_root())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("console consumer"),
    )
}

#[test]
fn mixed_group_with_kcat_and_the_java_console_consumer() {
    let topic = unique_topic("cons-mixed");
    let group = unique_topic("g-mixed");
    let k = kafka();
    runtime().block_on(async {
        let client = setup(&topic, 6).await;
        for p in 0..6 {
            produce(
                &client,
                &topic,
                p,
                50,
                50,
                10,
                now_ms(),
                &[Compression::None],
            )
            .await;
        }
    });
    // kcat in balanced-consumer mode (librdkafka; its default assignors are range and
    // roundrobin, so the group agrees on range).
    let kcat = Killed(
        Command::new("kcat")
            .args([
                "-b",
                k.bootstrap(),
                "-G",
                &group,
                &topic,
                "-q",
                "-o",
                "beginning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kcat"),
    );
    // Kafka's Java console consumer (range + cooperative-sticky by default).
    let java = java_console_consumer(&topic, &group, &[], Stdio::null());
    std::thread::sleep(Duration::from_secs(8));
    runtime().block_on(async {
        let mut c = Consumer::connect(
            base(k.bootstrap())
                .group_id(group.clone())
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        c.subscribe([topic.clone()]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Poll until we are in the group with a share of the partitions.
        loop {
            let _ = c.poll(Duration::from_millis(300)).await.unwrap();
            let n = c.assignment().len();
            if c.group_membership().is_some() && n > 0 {
                assert!(
                    n < 6,
                    "we got every partition: the others are not in the group"
                );
                break;
            }
            assert!(Instant::now() < deadline, "never got an assignment");
        }
        // The group has three members with consumer protocol "range"; every partition
        // is owned by someone. A member that joined late (the Java one starts slowly on a
        // loaded machine) leaves the group rebalancing for a while, and a rebalancing group
        // is described without assignments: ask again until it has settled.
        let mut described = String::new();
        let mut members = 0;
        let mut owned = 0;
        for _ in 0..20 {
            described = k.tool_ok(
                "consumer-groups",
                &[
                    "--bootstrap-server",
                    k.bootstrap(),
                    "--describe",
                    "--group",
                    &group,
                    "--members",
                    "--verbose",
                ],
            );
            let lines: Vec<&str> = described
                .lines()
                .filter(|l| l.starts_with(&group))
                .collect();
            members = lines.len();
            owned = described
                .lines()
                .find(|l| l.contains("#PARTITIONS"))
                .and_then(|h| h.split_whitespace().position(|c| c == "#PARTITIONS"))
                .map_or(0, |col| {
                    lines
                        .iter()
                        .map(|l| {
                            l.split_whitespace()
                                .nth(col)
                                .and_then(|s| s.parse::<usize>().ok())
                                .unwrap_or(0)
                        })
                        .sum()
                });
            if members >= 3 && owned == 6 {
                break;
            }
            let _ = c.poll(Duration::from_millis(500)).await.unwrap();
        }
        assert_eq!(members, 3, "{described}");
        assert_eq!(owned, 6, "partitions owned across members:\n{described}");
        c.close().await.unwrap();
    });
    drop(kcat);
    drop(java);
}

/// (partition, record index) of a record written by [`produce`], read back from its value;
/// `None` for any other line.
fn record_of(value: &str) -> Option<(i32, usize)> {
    let mut parts = value.trim().split('-');
    let p = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let i = parts.next()?.strip_prefix('r')?.parse().ok()?;
    Some((p, i))
}

/// Polls every consumer in turn (they share one task) until the group, as the coordinator
/// describes it, is stable with `members` members that between them hold every partition
/// and agree with what our consumers hold; returns each member's partitions by client id
/// prefix (`java` or `ours-<index>`).
async fn settle(
    admin: &kafka_admin::Admin,
    group: &str,
    members: usize,
    ours: &mut [&mut Consumer],
) -> HashMap<String, HashSet<i32>> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        for c in ours.iter_mut() {
            let _ = c.poll(Duration::from_millis(200)).await.unwrap();
        }
        let d = admin
            .describe_groups(&[group])
            .await
            .ok()
            .and_then(|r| r.into_result().ok())
            .and_then(|mut r| r.remove(group));
        if let Some(d) = d {
            let mut held: HashMap<String, HashSet<i32>> = HashMap::new();
            for m in &d.members {
                let who = if m.client_id.starts_with("console-consumer") {
                    "java".to_string()
                } else {
                    let i = ours
                        .iter()
                        .position(|c| {
                            c.group_membership()
                                .is_some_and(|(id, _)| id == m.member_id)
                        })
                        .map_or(usize::MAX, |i| i);
                    format!("ours-{i}")
                };
                held.insert(who, m.assignment.iter().map(|tp| tp.partition).collect());
            }
            let agree = ours.iter().enumerate().all(|(i, c)| {
                let mine: HashSet<i32> = c.assignment().iter().map(|tp| tp.partition).collect();
                held.get(&format!("ours-{i}")) == Some(&mine)
            });
            let total: usize = held.values().map(HashSet::len).sum();
            if d.state == "Stable" && held.len() == members && total == 6 && agree {
                assert_eq!(d.assignor, "sticky", "{d:?}");
                return held;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the group never settled with {members} members"
        );
    }
}

/// Java's `StickyAssignor` and ours in one group. Our first member leads (it joins first);
/// Kafka's Java console consumer joins, then our second member: each rebalance reads the
/// others' sticky user data (Java's bytes, ours), and partitions move only to the newcomer.
/// Records written once the group settled are read by exactly one member each: disjoint,
/// non-empty shares that together are every record.
#[test]
fn sticky_group_with_the_java_console_consumer_reads_disjoint_shares() {
    let topic = unique_topic("cons-sticky");
    let group = unique_topic("g-sticky");
    let k = kafka();
    let per_partition = 20;
    let rt = runtime();
    let client = rt.block_on(setup(&topic, 6));
    let admin = kafka_admin::Admin::with_client(
        client.clone(),
        kafka_admin::AdminConfig::new(client_config(k.bootstrap())),
    );
    let config = || {
        base(k.bootstrap())
            .group_id(group.clone())
            .assignors(vec![AssignorKind::Sticky])
            .heartbeat_interval(Duration::from_millis(500))
            .session_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let mut a = rt.block_on(async {
        let mut a = Consumer::connect(config()).await.unwrap();
        a.subscribe([topic.clone()]).unwrap();
        let alone = settle(&admin, &group, 1, &mut [&mut a]).await;
        assert_eq!(alone["ours-0"].len(), 6);
        a
    });
    let mut java = java_console_consumer(
        &topic,
        &group,
        &[
            "--consumer-property",
            "partition.assignment.strategy=org.apache.kafka.clients.consumer.StickyAssignor",
            "--consumer-property",
            "heartbeat.interval.ms=500",
        ],
        Stdio::piped(),
    );
    let java_read: Arc<Mutex<Vec<(i32, usize)>>> = Arc::default();
    let reader = {
        let out = java.0.stdout.take().expect("piped stdout");
        let java_read = Arc::clone(&java_read);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // The tool also prints notices (deprecated options) on stdout.
                if let Some(r) = record_of(&line) {
                    java_read.lock().unwrap().push(r);
                }
            }
        })
    };
    rt.block_on(async {
        let two = settle(&admin, &group, 2, &mut [&mut a]).await;
        assert_eq!((two["ours-0"].len(), two["java"].len()), (3, 3), "{two:?}");
        let mut b = Consumer::connect(config()).await.unwrap();
        b.subscribe([topic.clone()]).unwrap();
        let three = settle(&admin, &group, 3, &mut [&mut a, &mut b]).await;
        for who in ["ours-0", "java", "ours-1"] {
            assert_eq!(three[who].len(), 2, "{three:?}");
        }
        // Sticky: the two who stayed kept two of their three; only b's share moved.
        for who in ["ours-0", "java"] {
            assert!(three[who].is_subset(&two[who]), "{two:?} -> {three:?}");
        }
        for p in 0..6 {
            produce(
                &client,
                &topic,
                p,
                per_partition,
                per_partition,
                10,
                now_ms(),
                &[Compression::None],
            )
            .await;
        }
        // Everyone reads until every record was read by someone, then a little longer
        // (a record read twice would show up).
        let mut ours: [Vec<(i32, usize)>; 2] = Default::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut extra = 0;
        while extra < 3 {
            for (i, c) in [&mut a, &mut b].into_iter().enumerate() {
                for r in c.poll(Duration::from_millis(300)).await.unwrap() {
                    let value = String::from_utf8_lossy(r.value.as_deref().unwrap());
                    ours[i].push(record_of(&value).expect("one of our records"));
                }
            }
            let total = ours[0].len() + ours[1].len() + java_read.lock().unwrap().len();
            if total >= 6 * per_partition {
                extra += 1;
            }
            assert!(
                Instant::now() < deadline,
                "only {total} of {} records read",
                6 * per_partition
            );
        }
        let shares = [
            ("ours-0", &ours[0]),
            ("ours-1", &ours[1]),
            ("java", &java_read.lock().unwrap().clone()),
        ];
        let mut all: HashSet<(i32, usize)> = HashSet::new();
        for (who, read) in shares {
            assert!(!read.is_empty(), "{who} read nothing");
            for r in read.iter() {
                assert!(
                    three[who].contains(&r.0),
                    "{who} read {r:?}, not from its partitions {three:?}"
                );
                assert!(all.insert(*r), "{r:?} read twice");
            }
        }
        assert_eq!(all.len(), 6 * per_partition);
        b.close().await.unwrap();
        a.close().await.unwrap();
    });
    drop(java);
    reader.join().unwrap();
}

#[test]
fn kip848_group_splits_partitions_and_reads_everything() {
    runtime().block_on(async {
        let topic = unique_topic("cons-848");
        let group = unique_topic("g-848");
        let client = setup(&topic, 4).await;
        for p in 0..4 {
            produce(
                &client,
                &topic,
                p,
                100,
                25,
                10,
                now_ms(),
                &[Compression::None],
            )
            .await;
        }
        let cfg = || {
            base(kafka().bootstrap())
                .group_id(group.clone())
                .group_protocol(kafka_consumer::GroupProtocol::Consumer)
                .max_poll_records(10)
                .build()
                .unwrap()
        };
        let mut a = Consumer::connect(cfg()).await.unwrap();
        let mut b = Consumer::connect(cfg()).await.unwrap();
        a.subscribe([topic.clone()]).unwrap();
        b.subscribe([topic.clone()]).unwrap();
        let mut keys: HashMap<String, usize> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut both_had_partitions = false;
        while keys.len() < 400 || !both_had_partitions {
            assert!(
                Instant::now() < deadline,
                "{} of 400 records; assignments {:?} / {:?}",
                keys.len(),
                a.assignment(),
                b.assignment()
            );
            for c in [&mut a, &mut b] {
                for r in c.poll(Duration::from_millis(200)).await.unwrap() {
                    let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    *keys.entry(k).or_default() += 1;
                }
            }
            let (na, nb) = (a.assignment().len(), b.assignment().len());
            if na > 0 && nb > 0 {
                assert_eq!(na + nb, 4, "overlapping or missing partitions");
                both_had_partitions = true;
            }
        }
        assert_eq!(
            a.group_protocol(),
            Some(kafka_consumer::GroupProtocol::Consumer)
        );
        assert!(a.group_membership().unwrap().1 > 0, "member epoch");
        assert_eq!(keys.len(), 400);
        // The broker runs it as a KIP-848 group.
        let described = kafka().tool_ok(
            "consumer-groups",
            &[
                "--bootstrap-server",
                kafka().bootstrap(),
                "--describe",
                "--group",
                &group,
                "--state",
            ],
        );
        assert!(described.contains("Stable"), "{described}");
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

#[test]
fn pause_holds_records_back_until_resume() {
    runtime().block_on(async {
        let topic = unique_topic("cons-pause");
        let client = setup(&topic, 2).await;
        for p in 0..2 {
            produce(
                &client,
                &topic,
                p,
                20,
                20,
                10,
                now_ms(),
                &[Compression::None],
            )
            .await;
        }
        let mut c = Consumer::connect(base(kafka().bootstrap()).build().unwrap())
            .await
            .unwrap();
        let tps = all_partitions(&topic, 2);
        c.assign(tps.clone()).unwrap();
        c.pause(&tps[..1]).unwrap();
        // The unpaused partition's 20 records (however long the first fetch takes on a
        // loaded machine), then 2 s more in which the paused one gives nothing.
        let mut got: Vec<i32> = recv_n(&mut c, 20, Duration::from_secs(20))
            .await
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            got.extend(
                c.poll(Duration::from_millis(300))
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.partition),
            );
        }
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|p| *p == 1));
        assert_eq!(c.paused(), tps[..1].to_vec());
        assert!(c.describe().iter().any(|r| r.paused && r.tp == tps[0]));
        assert!(
            c.stalled_partitions().is_empty(),
            "a paused partition is not stalled"
        );
        c.resume(&tps[..1]).unwrap();
        let more = recv_n(&mut c, 20, Duration::from_secs(20)).await;
        assert!(more.iter().all(|(p, _, _)| *p == 0));
    });
}

#[test]
fn rebalance_listener_commits_on_revoke_and_static_members_rejoin_without_a_rebalance() {
    runtime().block_on(async {
        let topic = unique_topic("cons-listener");
        let group = unique_topic("g-listener");
        let client = setup(&topic, 2).await;
        for p in 0..2 {
            produce(
                &client,
                &topic,
                p,
                50,
                50,
                10,
                now_ms(),
                &[Compression::None],
            )
            .await;
        }
        let cfg = |instance: Option<&str>| {
            let mut b = base(kafka().bootstrap())
                .group_id(group.clone())
                .enable_auto_commit(false)
                .heartbeat_interval(Duration::from_millis(300))
                .session_timeout(Duration::from_secs(10));
            if let Some(i) = instance {
                b = b.group_instance_id(i);
            }
            b.build().unwrap()
        };
        let events: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut a = Consumer::connect(cfg(None)).await.unwrap();
        {
            let events = Arc::clone(&events);
            a.set_rebalance_listener(Box::new(move |ev, handle| {
                let events = Arc::clone(&events);
                Box::pin(async move {
                    if let kafka_consumer::RebalanceEvent::Revoked(positions) = &ev {
                        // Commit inside the listener, before the partitions go.
                        handle.commit(positions).await.unwrap();
                    }
                    events.lock().unwrap().push(format!("{ev:?}"));
                })
            }));
        }
        a.subscribe([topic.clone()]).unwrap();
        let got = recv_n(&mut a, 100, Duration::from_secs(60)).await;
        assert_eq!(got.len(), 100);
        // B joins: A's partitions are revoked (range is eager) and the listener commits.
        // B polls in its own task (a poll waits in JoinGroup until every member rejoined).
        let b_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b_parts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let b_task = {
            let cfg = cfg(None);
            let topic = topic.clone();
            let (b_done, b_parts) = (Arc::clone(&b_done), Arc::clone(&b_parts));
            tokio::spawn(async move {
                let mut b = Consumer::connect(cfg).await.unwrap();
                b.subscribe([topic]).unwrap();
                while !b_done.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = b.poll(Duration::from_millis(100)).await.unwrap();
                    b_parts.store(b.assignment().len(), std::sync::atomic::Ordering::Relaxed);
                }
                b.close().await.unwrap();
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while a.assignment().len() != 1 || b_parts.load(std::sync::atomic::Ordering::Relaxed) != 1 {
            assert!(Instant::now() < deadline, "no rebalance to 1 + 1");
            let _ = a.poll(Duration::from_millis(100)).await.unwrap();
        }
        let evs = events.lock().unwrap().clone();
        assert!(evs.iter().any(|e| e.starts_with("Revoked")), "{evs:?}");
        let committed = a.committed(&all_partitions(&topic, 2)).await.unwrap();
        for tp in all_partitions(&topic, 2) {
            assert_eq!(committed[&tp], Some(50), "{tp}: {evs:?}");
        }
        b_done.store(true, std::sync::atomic::Ordering::Relaxed);
        a.close().await.unwrap();
        b_task.await.unwrap();

        // Static membership: a member that restarts with the same group.instance.id within
        // the session timeout takes its place back without a new generation.
        let mut s1 = Consumer::connect(cfg(Some("static-1"))).await.unwrap();
        s1.subscribe([topic.clone()]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while s1.assignment().len() != 2 {
            assert!(Instant::now() < deadline, "static member never joined");
            let _ = s1.poll(Duration::from_millis(200)).await.unwrap();
        }
        let (_, generation) = s1.group_membership().unwrap();
        s1.close().await.unwrap();
        let mut s2 = Consumer::connect(cfg(Some("static-1"))).await.unwrap();
        s2.subscribe([topic.clone()]).unwrap();
        while s2.assignment().len() != 2 {
            assert!(Instant::now() < deadline, "static member never rejoined");
            let _ = s2.poll(Duration::from_millis(200)).await.unwrap();
        }
        let (_, generation2) = s2.group_membership().unwrap();
        assert_eq!(
            generation2, generation,
            "a static rejoin must not rebalance"
        );
        s2.close().await.unwrap();
    });
}

#[test]
fn pattern_subscription_reads_every_matching_topic() {
    runtime().block_on(async {
        let prefix = unique_topic("cons-re");
        let (t1, t2, other) = (
            format!("{prefix}-a"),
            format!("{prefix}-b"),
            unique_topic("cons-nore"),
        );
        let client = setup(&t1, 1).await;
        create_topic(&client, &t2, 2).await;
        create_topic(&client, &other, 1).await;
        produce(&client, &t1, 0, 10, 10, 10, now_ms(), &[Compression::None]).await;
        for p in 0..2 {
            produce(&client, &t2, p, 10, 10, 10, now_ms(), &[Compression::None]).await;
        }
        produce(
            &client,
            &other,
            0,
            10,
            10,
            10,
            now_ms(),
            &[Compression::None],
        )
        .await;
        let mut c = Consumer::connect(
            base(kafka().bootstrap())
                .group_id(unique_topic("g-re"))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        c.subscribe_pattern(&format!("{}-(a|b)", regex_escape(&prefix)))
            .unwrap();
        let got = recv_n(&mut c, 30, Duration::from_secs(60)).await;
        let topics: HashSet<String> = c
            .assignment()
            .iter()
            .map(|tp| tp.topic.to_string())
            .collect();
        assert_eq!(topics, HashSet::from([t1.clone(), t2.clone()]));
        assert_eq!(got.len(), 30);
        assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
        c.close().await.unwrap();
    });
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

#[test]
fn poll_returns_at_its_timeout_while_a_join_waits_for_other_members() {
    runtime().block_on(async {
        let topic = unique_topic("cons-jointime");
        let group = unique_topic("g-jointime");
        let _client = setup(&topic, 2).await;
        let cfg = || {
            base(kafka().bootstrap())
                .group_id(group.clone())
                .heartbeat_interval(Duration::from_millis(300))
                .build()
                .unwrap()
        };
        // Both members polled from one task: B's join waits for A to rejoin, which only
        // happens if B's poll gives control back at its timeout.
        let (mut a, mut b) = two_members(&topic, cfg).await;
        let slowest = split_in_two(&mut a, &mut b, Duration::from_secs(60)).await;
        assert!(slowest < Duration::from_secs(3), "a poll took {slowest:?}");
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

/// Two consumers made with `cfg`, subscribed to `topic`.
async fn two_members(topic: &str, cfg: impl Fn() -> ConsumerConfig) -> (Consumer, Consumer) {
    let mut a = Consumer::connect(cfg()).await.unwrap();
    let mut b = Consumer::connect(cfg()).await.unwrap();
    a.subscribe([topic]).unwrap();
    b.subscribe([topic]).unwrap();
    (a, b)
}

/// Polls `a` and `b` in turn (200 ms each) until both hold one of the two partitions;
/// returns the longest poll.
async fn split_in_two(a: &mut Consumer, b: &mut Consumer, limit: Duration) -> Duration {
    let deadline = Instant::now() + limit;
    let mut slowest = Duration::ZERO;
    while a.assignment().len() != 1 || b.assignment().len() != 1 {
        assert!(
            Instant::now() < deadline,
            "no 1 + 1 split within {limit:?}: {:?} / {:?}",
            a.assignment(),
            b.assignment()
        );
        for c in [&mut *a, &mut *b] {
            let t = Instant::now();
            c.poll(Duration::from_millis(200)).await.unwrap();
            slowest = slowest.max(t.elapsed());
        }
    }
    slowest
}

#[test]
fn metrics_count_records_bytes_fetches_lag_rebalances_and_commit_failures() {
    let m = Capture::default();
    let topic = unique_topic("cons-metrics");
    let group = unique_topic("g-metrics");
    let lag_of = |p: i32| format!("kafka_consumer_lag{{partition={p},topic={topic}}}");
    m.run(async {
        let client = setup(&topic, 2).await;
        let per_partition = 150;
        for p in 0..2 {
            produce(
                &client,
                &topic,
                p,
                per_partition,
                40,
                64,
                now_ms(),
                &[Compression::None, Compression::Lz4],
            )
            .await;
        }
        let cfg = || {
            base(kafka().bootstrap())
                .group_id(group.clone())
                .heartbeat_interval(Duration::from_millis(300))
                .max_poll_records(70)
                .build()
                .unwrap()
        };
        let mut a = Consumer::connect(cfg()).await.unwrap();
        a.subscribe([topic.clone()]).unwrap();
        let got = recv_n(&mut a, 2 * per_partition, Duration::from_secs(15)).await;
        assert_eq!(got.len(), 2 * per_partition);
        // Counted as handed out, reported once per batch: everything read is in.
        assert_eq!(
            m.counter("kafka_consumer_records_total"),
            2 * per_partition as u64
        );
        assert!(m.counter("kafka_consumer_bytes_total") > 2 * per_partition as u64 * 64);
        let latencies = m.histogram("kafka_consumer_fetch_latency_seconds");
        assert!(!latencies.is_empty(), "no fetch latency samples");
        assert!(latencies.iter().all(|&s| (0.0..30.0).contains(&s)));
        // Lag is reported at most once a second, when a fetch returns: keep polling.
        let deadline = Instant::now() + Duration::from_secs(8);
        while (0..2).any(|p| m.gauge(&lag_of(p)) != Some(0.0)) {
            assert!(
                Instant::now() < deadline,
                "lag not 0: {:?} {:?}",
                m.gauge(&lag_of(0)),
                m.gauge(&lag_of(1))
            );
            assert!(a.poll(Duration::from_millis(300)).await.unwrap().is_empty());
        }
        assert_eq!(m.gauge("kafka_consumer_lag_sum"), Some(0.0));

        // A second member: both rebalance (the newcomer's first join counts too).
        let joins = m.counter("kafka_consumer_rebalances_total");
        assert!(joins >= 1, "the first join was not counted");
        let mut b = Consumer::connect(cfg()).await.unwrap();
        b.subscribe([topic.clone()]).unwrap();
        split_in_two(&mut a, &mut b, Duration::from_secs(60)).await;
        assert!(
            m.counter("kafka_consumer_rebalances_total") >= joins + 2,
            "{} rebalances counted after {joins}",
            m.counter("kafka_consumer_rebalances_total")
        );

        // A commit outside the live group's generation is refused, and counted.
        let failures = m.counter("kafka_consumer_commit_failures_total");
        let mut outsider = Consumer::connect(cfg()).await.unwrap();
        let tp = TopicPartition::new(topic.as_str(), 0);
        outsider.assign([tp.clone()]).unwrap();
        assert!(outsider.commit_offsets(&[(tp.clone(), 1)]).await.is_err());
        assert_eq!(
            m.counter("kafka_consumer_commit_failures_total"),
            failures + 1
        );
        assert_eq!(
            m.counter("kafka_consumer_records_total"),
            2 * per_partition as u64,
            "records counted twice"
        );
        // A seek into the middle of a batch: the records before it are fetched and decoded
        // but not handed out, and not counted.
        outsider.seek(&tp, 25).unwrap();
        let got = recv_n(&mut outsider, per_partition - 25, Duration::from_secs(10)).await;
        assert_eq!(got[0].1, 25);
        assert_eq!(
            m.counter("kafka_consumer_records_total"),
            3 * per_partition as u64 - 25
        );
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

#[test]
fn a_member_dropped_without_close_leaves_the_group_at_once() {
    runtime().block_on(async {
        let topic = unique_topic("cons-drop");
        let _client = setup(&topic, 2).await;
        for protocol in [
            kafka_consumer::GroupProtocol::Classic,
            kafka_consumer::GroupProtocol::Consumer,
        ] {
            let group = unique_topic("g-drop");
            // Classic: the session timeout is ours (30 s); KIP-848: the broker's (45 s).
            let cfg = || {
                base(kafka().bootstrap())
                    .group_id(group.clone())
                    .group_protocol(protocol)
                    .session_timeout(Duration::from_secs(30))
                    .heartbeat_interval(Duration::from_millis(500))
                    .build()
                    .unwrap()
            };
            let (mut a, mut b) = two_members(&topic, cfg).await;
            split_in_two(&mut a, &mut b, Duration::from_secs(60)).await;
            // No close: Drop sends the LeaveGroup in the background.
            let dropped = Instant::now();
            drop(b);
            while a.assignment().len() != 2 {
                assert!(
                    dropped.elapsed() < Duration::from_secs(20),
                    "{protocol:?}: the survivor holds {:?} {:?} after the drop",
                    a.assignment(),
                    dropped.elapsed()
                );
                a.poll(Duration::from_millis(200)).await.unwrap();
            }
            a.close().await.unwrap();
        }
    });
}
