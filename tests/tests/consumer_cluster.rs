//! `kafka_consumer::Consumer` on a three-node cluster (racks rack-a/b/c, the kit's
//! `RackAwareReplicaSelector`): the leader of the partitions being read is killed (SIGKILL)
//! while records flow; consumption resumes on the new leader and nothing acknowledged is
//! skipped, in order per partition. Follower fetching (KIP-392): a consumer with
//! `client.rack` reads from the replica of its rack, and from the leader while that replica
//! is down. Log truncation (KIP-320): an unclean election throws away records a consumer has
//! read; it is told so (`auto.offset.reset=none`) or moved to the divergence point.
//!
//! Every test stops brokers, so they run one at a time, and each leaves every broker up.
//!
//! `KAFKA_KIT_PORT_OFFSET=1000 cargo test -p tests --test consumer_cluster`

mod admin_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use admin_support::{admin, eventually, leader_and_isr, now_ms, wait_for_leaders};
use kafka_admin::cluster::ElectionType;
use kafka_admin::{Admin, NewTopic};
use kafka_consumer::{
    Consumer, ConsumerConfig, ConsumerError, ConsumerRecord, OffsetReset, TopicPartition,
};
use kafka_core::client::{Client, ClientConfig, ConnectionClass, Target};
use kafka_core::codec::compression::Compressor;
use kafka_core::codec::records::{BatchOptions, RecordBatchBuilder};
use kafka_core::net::ConnectionConfig;
use kafka_core::KafkaCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tests::{cluster, unique_topic, Cluster, ClusterSpec};

fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::three_nodes())
}

/// The tests stop brokers: they take turns ([`BrokersTurn`]).
static BROKERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A test's turn with the brokers. When the test fails half way, the turn starts the brokers
/// it stopped as it ends, so that the next test finds the cluster whole. (A test that passes
/// restores it itself, and waits for the ISR.)
struct BrokersTurn {
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl BrokersTurn {
    async fn take() -> Self {
        BrokersTurn {
            _lock: BROKERS.lock().await,
        }
    }

    /// For a test outside any runtime.
    fn take_blocking() -> Self {
        BrokersTurn {
            _lock: BROKERS.blocking_lock(),
        }
    }
}

impl Drop for BrokersTurn {
    fn drop(&mut self) {
        if std::thread::panicking() && kafka().is_managed() {
            for broker in kafka().brokers() {
                // Not `Cluster::start_broker`: a second panic here would abort the run.
                let _ = std::process::Command::new("bash")
                    .arg(tests::kafka_script())
                    .args(["node", &broker.id.to_string(), "start"])
                    .current_dir(tests::repo_root())
                    .output();
            }
        }
    }
}

fn client_config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new([bootstrap])
        .unwrap()
        .with_connection(
            ConnectionConfig::default()
                .with_client_id("consumer-cluster-tests")
                .with_connect_timeout(Duration::from_secs(3))
                .with_request_timeout(Duration::from_secs(10)),
        )
        .with_default_api_timeout(Duration::from_secs(60))
}

/// One produce attempt of `keys` to `partition`; true when acknowledged (acks=all).
async fn produce_once(client: &Client, topic: &str, partition: i32, keys: &[String]) -> bool {
    let mut b = RecordBatchBuilder::new(BatchOptions::default());
    // Timestamp now: time retention (7 days) would delete records of 1970 at its next
    // check (`log.retention.check.interval.ms`, 10 s in the kit), under the consumer's feet.
    let now = now_ms();
    for k in keys {
        b.append(now, Some(k.as_bytes()), Some(b"v"), &[]).unwrap();
    }
    let batch = b.seal(&mut Compressor::new()).unwrap();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let Ok((_, conn)) = client
        .connection(
            &Target::leader_of(topic, partition),
            ConnectionClass::Produce,
        )
        .await
    else {
        return false;
    };
    let version = conn.max_version(0).unwrap_or(3).min(11);
    match conn.send_at(req, version).await {
        Ok(resp) => {
            let code = KafkaCode::from_i16(resp.responses[0].partition_responses[0].error_code);
            if code != KafkaCode::None {
                let _ = client.refresh_metadata(&[topic]).await;
            }
            code == KafkaCode::None
        }
        Err(_) => {
            let _ = client.refresh_metadata(&[topic]).await;
            false
        }
    }
}

/// Per partition: (offset, key) of every record handed out, in order.
type Consumed = HashMap<i32, Vec<(i64, String)>>;

#[test]
fn leader_killed_while_consuming_nothing_acknowledged_is_skipped() {
    let _turn = BrokersTurn::take_blocking();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let k = kafka();
    let topic = unique_topic("cons-kill");
    let victim = rt.block_on(async {
        let client = Client::connect(client_config(k.bootstrap())).await.unwrap();
        let resp = client
            .send_to(
                Target::AnyBroker,
                CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_num_partitions(3)
                        .with_replication_factor(3)])
                    .with_timeout_ms(30_000),
            )
            .await
            .unwrap();
        assert_eq!(
            KafkaCode::from_i16(resp.topics[0].error_code),
            KafkaCode::None
        );
        let mut leader = None;
        for _ in 0..100 {
            let meta = client.refresh_metadata(&[topic.as_str()]).await.unwrap();
            if (0..3).all(|p| meta.leader(&topic, p).is_some()) {
                leader = meta.leader(&topic, 0).map(|l| l.leader);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        leader.expect("leaders")
    });

    let acked: Arc<Mutex<BTreeMap<i32, Vec<String>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The producer: batches of 10 to each partition in turn, acknowledged keys recorded.
    let producer = {
        let acked = Arc::clone(&acked);
        let stop = Arc::clone(&stop);
        let topic = topic.clone();
        let bootstrap = k.bootstrap().to_string();
        rt.spawn(async move {
            let client = Client::connect(client_config(&bootstrap)).await.unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for p in 0..3 {
                    let keys: Vec<String> = (0..10).map(|i| format!("{p}:{n}:{i}")).collect();
                    if produce_once(&client, &topic, p, &keys).await {
                        acked.lock().unwrap().entry(p).or_default().extend(keys);
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let consumed: Arc<Mutex<Consumed>> = Arc::default();
    let consumer = {
        let consumed = Arc::clone(&consumed);
        let stop = Arc::clone(&stop);
        let topic = topic.clone();
        let cfg = ConsumerConfig::builder(client_config(k.bootstrap()))
            .auto_offset_reset(OffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200))
            .build()
            .unwrap();
        rt.spawn(async move {
            let mut c = Consumer::connect(cfg).await.unwrap();
            c.assign((0..3).map(|p| TopicPartition::new(&topic, p)))
                .unwrap();
            let mut idle_after_stop = 0;
            loop {
                let got = c.poll(Duration::from_millis(500)).await.unwrap();
                if got.is_empty() && stop.load(std::sync::atomic::Ordering::Relaxed) {
                    idle_after_stop += 1;
                    if idle_after_stop > 10 {
                        break;
                    }
                }
                let mut m = consumed.lock().unwrap();
                for r in got {
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    m.entry(r.partition).or_default().push((r.offset, key));
                }
            }
        })
    };

    // Kill only once records flow (two clients must connect and the consumer join first).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let flowing = consumed.lock().unwrap().values().any(|v| !v.is_empty());
        if flowing {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing consumed within 30 s, before the kill"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = consumed
        .lock()
        .unwrap()
        .values()
        .map(Vec::len)
        .sum::<usize>();
    k.kill_broker(victim);
    // Records keep arriving once the controller has moved the victim's partitions (it notices
    // a killed broker after broker.session.timeout.ms, 9 s by default) and the consumer has
    // followed: wait for that, up to a minute on a loaded machine, rather than a fixed time.
    let count = || {
        consumed
            .lock()
            .unwrap()
            .values()
            .map(Vec::len)
            .sum::<usize>()
    };
    let killed_at = Instant::now();
    let mut during = count();
    while during <= before && killed_at.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(250));
        during = count();
    }
    // And some more after the move, so that records from the new leaders are in the check.
    let resumed_at = count();
    let settle = Instant::now();
    while count() <= resumed_at && settle.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(250));
    }
    k.start_broker(victim);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(producer).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !consumer.is_finished() {
        assert!(Instant::now() < deadline, "consumer did not drain");
        std::thread::sleep(Duration::from_millis(200));
    }
    rt.block_on(consumer).unwrap();

    assert!(
        during > before,
        "consumption did not resume after the leader was killed"
    );
    let acked = acked.lock().unwrap();
    let consumed = consumed.lock().unwrap();
    for p in 0..3 {
        let got = consumed.get(&p).cloned().unwrap_or_default();
        // Order: offsets strictly increasing, no record handed out twice.
        for w in got.windows(2) {
            assert!(
                w[1].0 > w[0].0,
                "partition {p}: offset {} after {}",
                w[1].0,
                w[0].0
            );
        }
        // Nothing acknowledged skipped.
        let keys: std::collections::HashSet<&str> = got.iter().map(|(_, k)| k.as_str()).collect();
        let missing: Vec<&String> = acked[&p]
            .iter()
            .filter(|k| !keys.contains(k.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "partition {p}: {} acknowledged records never consumed, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        assert!(
            acked[&p].len() > 100,
            "partition {p}: too few records for a meaningful test"
        );
    }
}

/// Produces `keys` to `partition` in batches of 10 (acks=all), retrying each batch until it
/// is acknowledged (30 s at most).
async fn produce_acked(client: &Client, topic: &str, partition: i32, keys: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for batch in keys.chunks(10) {
        while !produce_once(client, topic, partition, batch).await {
            assert!(
                Instant::now() < deadline,
                "{topic}-{partition}: not acknowledged within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// `keys` as the records at `first`, `first + 1`, ...: (offset, key).
fn at(first: i64, keys: &[String]) -> Vec<(i64, String)> {
    (first..).zip(keys.iter().cloned()).collect()
}

fn offsets_and_keys(records: &[ConsumerRecord]) -> Vec<(i64, String)> {
    records
        .iter()
        .map(|r| {
            let key = r.key.as_deref().expect("every record has a key");
            (r.offset, String::from_utf8(key.to_vec()).unwrap())
        })
        .collect()
}

/// Polls until `n` records were handed out (30 s at most); `check` sees the consumer after
/// every poll that returned some.
async fn read(c: &mut Consumer, n: usize, mut check: impl FnMut(&Consumer)) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} records within 30 s",
            got.len()
        );
        let records = c.poll(Duration::from_millis(500)).await.unwrap();
        if !records.is_empty() {
            check(c);
            got.extend(records);
        }
    }
    assert_eq!(got.len(), n, "more records than were produced");
    got
}

/// (fetched from, preferred read replica) of the consumer's only partition.
fn served_by(c: &Consumer) -> (Option<i32>, Option<i32>) {
    let report = c.describe();
    assert_eq!(report.len(), 1);
    (report[0].fetched_from, report[0].preferred_replica)
}

/// Waits (20 s at most) until partition 0 of `topic` is led by `leader` with exactly `isr`
/// in sync (in any order).
async fn wait_for_partition(admin: &Admin, topic: &str, leader: Option<i32>, isr: &[i32]) {
    let mut want = isr.to_vec();
    want.sort_unstable();
    let what = format!("{topic}-0 led by {leader:?} with ISR {want:?}");
    eventually(&what, || async {
        let (l, mut i) = leader_and_isr(admin, topic, 0).await?;
        i.sort_unstable();
        (l == leader && i == want).then_some(())
    })
    .await;
}

/// A topic of one partition on `replicas` (the first leads), with `configs`.
async fn create_topic(admin: &Admin, topic: &str, replicas: &[i32], configs: &[(&str, &str)]) {
    let mut t = NewTopic::with_assignment(topic, BTreeMap::from([(0, replicas.to_vec())]));
    for (k, v) in configs {
        t = t.config(*k, *v);
    }
    admin
        .create_topics(&[t], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), topic, 1).await;
    wait_for_partition(admin, topic, Some(replicas[0]), replicas).await;
}

/// Runs a blocking kit command (a broker stopped or started) off the runtime's thread.
async fn kit(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rack_reads_from_the_follower_of_its_rack_and_from_the_leader_while_it_is_down() {
    let _turn = BrokersTurn::take().await;
    let k = kafka();
    let admin = admin(k).await;
    let topic = unique_topic("cons-rack");
    // Broker 1 (rack-a) leads; brokers 2 (rack-b) and 3 (rack-c) follow.
    create_topic(&admin, &topic, &[1, 2, 3], &[]).await;
    let client = Client::connect(client_config(k.bootstrap())).await.unwrap();
    let first = keys("a", 300);
    produce_acked(&client, &topic, 0, &first).await;
    let tp = TopicPartition::new(&topic, 0);
    // One batch (10 records) per response and per poll, so that every response that
    // carries records is seen by `fetched_from` after some poll.
    let consumer = |rack: Option<&str>| {
        let mut b = ConsumerConfig::builder(client_config(k.bootstrap()))
            .auto_offset_reset(OffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200))
            .max_partition_fetch_bytes(1)
            .max_poll_records(10);
        if let Some(rack) = rack {
            b = b.client_rack(rack);
        }
        let config = b.build().unwrap();
        let tp = tp.clone();
        async move {
            let mut c = Consumer::connect(config).await.unwrap();
            c.assign([tp]).unwrap();
            c
        }
    };

    // Without client.rack: the leader serves.
    let mut anywhere = consumer(None).await;
    let got = read(&mut anywhere, 300, |c| {
        assert_eq!(served_by(c), (Some(1), None), "no client.rack: the leader");
    })
    .await;
    assert_eq!(offsets_and_keys(&got), at(0, &first));
    anywhere.close().await.unwrap();

    // client.rack=rack-b: the leader names broker 2, which serves every record.
    let mut in_b = consumer(Some("rack-b")).await;
    let got = read(&mut in_b, 300, |c| {
        assert_eq!(served_by(c), (Some(2), Some(2)), "rack-b: broker 2");
    })
    .await;
    assert_eq!(offsets_and_keys(&got), at(0, &first));

    // Broker 2 goes away: back to the leader, nothing skipped.
    kit(|| kafka().stop_broker(2)).await;
    let second = keys("b", 100);
    produce_acked(&client, &topic, 0, &second).await;
    let got = read(&mut in_b, 100, |c| {
        assert_eq!(served_by(c).0, Some(1), "broker 2 is down: the leader");
    })
    .await;
    assert_eq!(offsets_and_keys(&got), at(300, &second));
    // The consumer's metadata learns that broker 2 is gone, as it does when it refreshes
    // while broker 2 is down (polls let a refresh it has pending run): when broker 2 is
    // back, the leader names a replica the consumer's metadata does not list.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(in_b
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty());
        let meta = in_b.client().metadata();
        if meta.broker(2).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker 2 still listed after 20 s"
        );
        in_b.client()
            .refresh_metadata(&[topic.as_str()])
            .await
            .unwrap();
    }
    assert!(in_b
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(in_b.client().metadata().broker(2).is_none());

    // Broker 2 back in sync: the leader sends the consumer there again.
    kit(|| kafka().start_broker(2)).await;
    wait_for_partition(&admin, &topic, Some(1), &[1, 2, 3]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = 400;
    let mut round = 0;
    while served_by(&in_b) != (Some(2), Some(2)) {
        assert!(
            Instant::now() < deadline,
            "not back on broker 2 within 30 s: {:?}",
            in_b.describe()
        );
        let more = keys(&format!("c{round}"), 10);
        produce_acked(&client, &topic, 0, &more).await;
        let got = read(&mut in_b, 10, |_| {}).await;
        assert_eq!(offsets_and_keys(&got), at(next, &more));
        next += 10;
        round += 1;
    }
    in_b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclean_election_that_truncates_consumed_records_is_detected_kip_320() {
    let _turn = BrokersTurn::take().await;
    let k = kafka();
    let admin = admin(k).await;
    let topic = unique_topic("cons-truncated");
    // Replicas 2 (leader) and 3. min.insync.replicas 1: broker 2 alone acknowledges
    // while broker 3 is down, and broker 3 leaving the ISR does not make it an eligible
    // leader replica (KIP-966), so only an unclean election can pick it later.
    create_topic(&admin, &topic, &[2, 3], &[("min.insync.replicas", "1")]).await;
    let client = Client::connect(client_config(k.bootstrap())).await.unwrap();
    let old = keys("old", 20);
    produce_acked(&client, &topic, 0, &old).await;
    kit(|| kafka().stop_broker(3)).await;
    wait_for_partition(&admin, &topic, Some(2), &[2]).await;
    // Offsets 20..30 exist on broker 2 only.
    let lost = keys("lost", 10);
    produce_acked(&client, &topic, 0, &lost).await;

    // Three consumers read all 30 records from broker 2, one per auto.offset.reset.
    let tp = TopicPartition::new(&topic, 0);
    let mut consumers = Vec::new();
    for reset in [
        OffsetReset::None,
        OffsetReset::Earliest,
        OffsetReset::Latest,
    ] {
        let config = ConsumerConfig::builder(client_config(k.bootstrap()))
            .auto_offset_reset(reset)
            .fetch_max_wait(Duration::from_millis(200))
            .build()
            .unwrap();
        let mut c = Consumer::connect(config).await.unwrap();
        c.assign([tp.clone()]).unwrap();
        c.seek(&tp, 0).unwrap();
        let got = read(&mut c, 30, |_| {}).await;
        let mut want = at(0, &old);
        want.extend(at(20, &lost));
        assert_eq!(offsets_and_keys(&got), want, "{reset:?}");
        assert!(got[19].leader_epoch >= 0, "{:?}", got[19]);
        consumers.push((reset, c, got[19].leader_epoch));
    }

    // Broker 2 goes; broker 3, which never had offsets 20..30, is elected uncleanly and
    // takes 25 new records at 20..45. Offset 30 exists again: a consumer that trusted
    // its position would go on at 30 and never see new-0..new-9.
    kit(|| kafka().stop_broker(2)).await;
    kit(|| kafka().start_broker(3)).await;
    eventually("the partition offline", || async {
        let (leader, _) = leader_and_isr(&admin, &topic, 0).await?;
        leader.is_none().then_some(())
    })
    .await;
    admin
        .elect_leaders(
            ElectionType::Unclean,
            Some(&[kafka_admin::TopicPartition::new(&topic, 0)]),
        )
        .await
        .unwrap()
        .into_result()
        .expect("the unclean election succeeds");
    wait_for_partition(&admin, &topic, Some(3), &[3]).await;
    let new = keys("new", 25);
    produce_acked(&client, &topic, 0, &new).await;

    for (reset, mut c, old_epoch) in consumers {
        if reset == OffsetReset::None {
            // The typed error, and no record of the new log before it.
            let deadline = Instant::now() + Duration::from_secs(30);
            let e = loop {
                assert!(Instant::now() < deadline, "no LogTruncation within 30 s");
                match c.poll(Duration::from_millis(500)).await {
                    Ok(records) => assert!(records.is_empty(), "{records:?}"),
                    Err(e) => break e,
                }
            };
            match e {
                ConsumerError::LogTruncation {
                    topic: t,
                    partition,
                    position,
                    epoch,
                    end_offset,
                } => {
                    assert_eq!((t.as_str(), partition), (topic.as_str(), 0));
                    assert_eq!(position, 30, "consumed up to 30");
                    assert_eq!(end_offset, 20, "broker 3's log of epoch {epoch} ends at 20");
                    assert_eq!(epoch, old_epoch, "the epoch of the records both had");
                }
                e => panic!("expected LogTruncation, got {e}"),
            }
            // Reported once; the partition waits at the divergence point for the
            // application, which decides where to go on (here: from there).
            assert_eq!(c.position(&tp).unwrap(), Some(20));
            assert!(c.describe()[0].awaiting_seek);
            assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
            c.seek(&tp, 20).unwrap();
            assert!(!c.describe()[0].awaiting_seek);
        }
        // Earliest and latest alike move to the divergence point, as Java's consumer
        // does (not to the log's start or end).
        let got = read(&mut c, 25, |_| {}).await;
        assert_eq!(offsets_and_keys(&got), at(20, &new), "{reset:?}");
        assert!(got.iter().all(|r| r.leader_epoch > old_epoch), "{reset:?}");
        c.close().await.unwrap();
    }

    // Broker 2 back: it truncates its log to broker 3's and follows.
    kit(|| kafka().start_broker(2)).await;
    wait_for_partition(&admin, &topic, Some(3), &[2, 3]).await;
}
