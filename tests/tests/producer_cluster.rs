//! `kafka_producer::Producer` on the three-node cluster (racks a, b, c; min.insync.replicas
//! 2): the partition leader is killed while records flow, and every acknowledged record is
//! then read back exactly once, in order per partition; a partition without any live replica
//! ends its records with a clear delivery timeout.
//!
//! The tests stop and start brokers, so they run one at a time (a process-wide lock).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use kafka_core::client::{Client, ClientConfig, Target};
use kafka_core::net::ConnectionConfig;
use kafka_core::KafkaCode;
use kafka_producer::{Error, Outcome, Producer, ProducerConfig, ProducerRecord};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tests::{cluster, unique_topic, Cluster, ClusterSpec};

mod admin_support;
use admin_support::eventually;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::three_nodes())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct RestartOnDrop(&'static Cluster, i32);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        self.0.start_broker(self.1);
    }
}

async fn client(kafka: &Cluster) -> Client {
    Client::connect(ClientConfig::new([kafka.bootstrap()]).unwrap())
        .await
        .expect("connect")
}

/// Creates a topic and waits until every partition has a leader and a full ISR.
async fn create_topic(kafka: &Cluster, topic: CreatableTopic) {
    let name = topic.name.0.to_string();
    let c = client(kafka).await;
    let resp = c
        .send_to(
            Target::Controller,
            CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000),
        )
        .await
        .expect("CreateTopics");
    assert_eq!(
        KafkaCode::from_i16(resp.topics[0].error_code),
        KafkaCode::None
    );
    for _ in 0..200 {
        let meta = c.refresh_metadata(&[name.as_str()]).await.unwrap();
        let parts = meta.partitions(&name);
        if !parts.is_empty()
            && parts
                .iter()
                .all(|p| p.leader.is_some() && p.isr.len() == p.replicas.len())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never had all its leaders");
}

fn topic_spec(name: &str, partitions: i32, replication: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(replication)
}

/// `(partition, offset, value)` of every record, as kcat (librdkafka) reads them.
fn kcat_read(bootstrap: &str, topic: &str) -> Vec<(i32, i64, String)> {
    tests::kcat_read(bootstrap, topic, &[], "%p|%o|%s\n")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, '|').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
            )
        })
        .collect()
}

#[test]
fn killing_the_leader_loses_nothing_acknowledged_and_duplicates_nothing() {
    let _serial = serial();
    let kafka = kafka();
    let rt = runtime();
    let topic = unique_topic("failover");
    const N: usize = 30_000;
    rt.block_on(create_topic(kafka, topic_spec(&topic, 3, 3)));
    // A new client may ask a broker that has not applied the topic from the metadata log
    // yet (create_topic only saw it on the broker its own client asked): wait for it.
    let victim = rt.block_on(async {
        let c = client(kafka).await;
        eventually("a leader for partition 0", || async {
            let meta = c.refresh_metadata(&[topic.as_str()]).await.ok()?;
            meta.leader(&topic, 0).map(|l| l.leader)
        })
        .await
    });
    let guard = rt.block_on(async {
        let config = ProducerConfig::new([kafka.bootstrap()])
            .unwrap()
            .delivery_timeout(Duration::from_secs(120));
        let mut config = config;
        config.client = config.client.with_connection(
            ConnectionConfig::default().with_request_timeout(Duration::from_secs(15)),
        );
        let producer = Producer::new(config).await.unwrap();
        let mut futures = Vec::with_capacity(N);
        let mut guard = None;
        for i in 0..N {
            if i == N / 3 {
                // Kill the leader of partition 0 mid-stream (SIGKILL: no controlled shutdown).
                tokio::task::spawn_blocking(move || kafka.kill_broker(victim))
                    .await
                    .unwrap();
                guard = Some(RestartOnDrop(kafka, victim));
            }
            let r = ProducerRecord::new(topic.clone(), format!("{i:08}")).partition((i % 3) as i32);
            futures.push(producer.send(r).await.expect("send"));
            if i % 1000 == 0 {
                // Let some acknowledgements happen before the kill, and during the election.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut acked: HashMap<(i32, i64), String> = HashMap::new();
        let mut failed = Vec::new();
        for (i, f) in futures.into_iter().enumerate() {
            match f.await {
                Ok(m) => {
                    assert_eq!(m.partition, (i % 3) as i32);
                    assert!(
                        acked
                            .insert((m.partition, m.offset), format!("{i:08}"))
                            .is_none(),
                        "two records acknowledged at {}-{}",
                        m.partition,
                        m.offset
                    );
                }
                Err(e) => failed.push((i, e)),
            }
        }
        producer.close(Duration::from_secs(30)).await.unwrap();
        assert!(
            failed.is_empty(),
            "{} records failed although delivery.timeout.ms was not reached: {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        assert!(
            producer.stats().retries > 0,
            "the kill caused no retry at all"
        );
        (guard, acked)
    });
    let (guard, acked) = guard;
    let read = kcat_read(kafka.bootstrap(), &topic);
    drop(guard);
    let mut seen = HashSet::new();
    let mut last_per_partition: HashMap<i32, String> = HashMap::new();
    for (p, o, v) in &read {
        assert!(seen.insert(v.clone()), "record {v} was written twice");
        if let Some(prev) = last_per_partition.insert(*p, v.clone()) {
            assert!(
                prev < *v,
                "partition {p}: {v} after {prev} (order broken at {o})"
            );
        }
    }
    for ((p, o), v) in &acked {
        assert!(
            read.iter()
                .any(|(rp, ro, rv)| rp == p && ro == o && rv == v),
            "acknowledged record {v} at {p}-{o} is missing"
        );
    }
    assert_eq!(read.len(), N, "every record is in the log exactly once");
}

#[test]
fn records_for_a_partition_without_live_replicas_end_in_delivery_timeout() {
    let _serial = serial();
    let kafka = kafka();
    let rt = runtime();
    let topic = unique_topic("offline");
    let victim = kafka.brokers().last().unwrap().id;
    rt.block_on(create_topic(
        kafka,
        topic_spec(&topic, 1, -1)
            .with_num_partitions(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(victim)])]),
    ));
    kafka.stop_broker(victim);
    let guard = RestartOnDrop(kafka, victim);
    rt.block_on(async {
        let mut config = ProducerConfig::new([kafka.bootstrap()])
            .unwrap()
            .delivery_timeout(Duration::from_secs(4));
        config.client = config.client.with_connection(
            ConnectionConfig::default().with_request_timeout(Duration::from_secs(2)),
        );
        let producer = Producer::new(config).await.unwrap();
        let fut = producer
            .send(ProducerRecord::new(topic.clone(), "nowhere to go"))
            .await
            .expect("the topic is known, so send queues the record");
        let e = tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .expect("the outcome comes by delivery.timeout.ms")
            .unwrap_err();
        assert!(matches!(e, Error::DeliveryTimeout { .. }), "{e:?}");
        assert_eq!(e.outcome(), Outcome::NotPersisted, "{e}");
        producer.close(Duration::from_secs(5)).await.unwrap();
    });
    drop(guard);
}
