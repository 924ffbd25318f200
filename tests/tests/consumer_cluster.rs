//! `kafka_consumer::Consumer` on a three-node cluster: the leader of the partitions being
//! read is killed (SIGKILL) while records flow; consumption resumes on the new leader and
//! nothing acknowledged is skipped, in order per partition.
//!
//! Every test stops brokers, so they run one at a time, and each leaves every broker up.
//!
//! `KAFKA_KIT_PORT_OFFSET=1000 cargo test -p tests --test consumer_cluster`

mod admin_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use admin_support::now_ms;
use kafka_consumer::{Consumer, ConsumerConfig, OffsetReset, TopicPartition};
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

/// The tests stop brokers: one at a time.
static BROKERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// When a test fails half way, starts the brokers it stopped, so that the next test finds
/// the cluster whole. (A test that passes restores it itself, and waits for the ISR.)
struct StartBrokersIfFailed;

impl Drop for StartBrokersIfFailed {
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
    let _alone = BROKERS.blocking_lock();
    let _restore = StartBrokersIfFailed;
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

    std::thread::sleep(Duration::from_secs(3));
    let before = consumed
        .lock()
        .unwrap()
        .values()
        .map(Vec::len)
        .sum::<usize>();
    assert!(before > 0, "nothing consumed before the kill");
    k.kill_broker(victim);
    std::thread::sleep(Duration::from_secs(8));
    let during = consumed
        .lock()
        .unwrap()
        .values()
        .map(Vec::len)
        .sum::<usize>();
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
