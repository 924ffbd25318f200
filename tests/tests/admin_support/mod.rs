//! Helpers shared by the test binaries that drive the cluster with `kafka-admin` (`admin.rs`,
//! `admin_cluster.rs`, `consumer_cluster.rs`, `producer_cluster.rs`).
#![allow(dead_code)]

use std::time::Duration;

use kafka_admin::{Admin, AdminConfig};
use kafka_core::client::{Client, ClientConfig, ConnectionClass, Target};
use kafka_core::codec::compression::{Compression, Compressor};
use kafka_core::codec::records::{BatchOptions, RecordBatchBuilder};
use kafka_core::KafkaCode;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tests::Cluster;

/// An admin client on the cluster's PLAINTEXT listener.
pub async fn admin(kafka: &Cluster) -> Admin {
    let config = AdminConfig::from_properties([
        ("bootstrap.servers", kafka.bootstrap()),
        ("client.id", "admin-tests"),
        ("default.api.timeout.ms", "60000"),
    ])
    .expect("admin config");
    Admin::connect(config).await.expect("admin connects")
}

/// An admin client over a given client config.
pub async fn admin_with(client: ClientConfig) -> Admin {
    Admin::connect(AdminConfig::builder().client(client).build().unwrap())
        .await
        .expect("admin connects")
}

/// Waits until every broker's metadata gives every partition of `topic` a leader (a new
/// topic reaches the brokers through the metadata log, not all at the same moment).
pub async fn wait_for_leaders(client: &Client, topic: &str, partitions: i32) {
    // 20 s of polling, and never more than 60 s of clock however slowly the brokers answer.
    if tokio::time::timeout(
        Duration::from_secs(60),
        poll_leaders(client, topic, partitions),
    )
    .await
    .is_err()
    {
        panic!("no leaders for {topic} within 60 s");
    }
}

async fn poll_leaders(client: &Client, topic: &str, partitions: i32) {
    for _ in 0..200 {
        let meta = client.refresh_metadata(&[topic]).await.unwrap();
        let mut everywhere = (0..partitions).all(|p| meta.leader(topic, p).is_some());
        let brokers: Vec<i32> = meta.brokers().map(|b| b.node_id).collect();
        for b in brokers {
            if !everywhere {
                break;
            }
            let req = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]));
            everywhere = match client.send_to(Target::Broker(b), req).await {
                Ok(r) => r.topics.iter().any(|t| {
                    t.error_code == 0
                        && t.partitions.len() == partitions as usize
                        && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
                }),
                Err(_) => false,
            };
        }
        if everywhere {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leaders for {topic}");
}

/// (leader, ISR) of `topic`-`partition` as the metadata of the broker asked has it; `None`
/// while it cannot tell.
pub async fn leader_and_isr(
    admin: &Admin,
    topic: &str,
    partition: i32,
) -> Option<(Option<i32>, Vec<i32>)> {
    let d = admin
        .describe_topics(&[topic])
        .await
        .ok()?
        .into_result()
        .ok()?;
    let p = d
        .values()
        .next()?
        .partitions
        .iter()
        .find(|p| p.partition == partition)?;
    Some((p.leader, p.isr.clone()))
}

/// Produces `n` records with timestamps `base_ts + i` to `topic`-`partition` (acks=all),
/// retrying retriable codes as a producer would.
pub async fn produce(client: &Client, topic: &str, partition: i32, n: usize, base_ts: i64) {
    produce_sized(client, topic, partition, n, base_ts, 0).await
}

/// [`produce`] with values padded to `value_size` bytes.
pub async fn produce_sized(
    client: &Client,
    topic: &str,
    partition: i32,
    n: usize,
    base_ts: i64,
    value_size: usize,
) {
    let mut builder = RecordBatchBuilder::new(BatchOptions {
        compression: Compression::None,
        ..BatchOptions::default()
    });
    for i in 0..n {
        let mut v = format!("value-{i}");
        while v.len() < value_size {
            v.push('x');
        }
        builder
            .append(base_ts + i as i64, None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    let batch = builder.seal(&mut Compressor::new()).unwrap();
    for _attempt in 0..100 {
        client.refresh_metadata(&[topic]).await.unwrap();
        let target = Target::leader_of(topic.to_string(), partition);
        let Ok((_, conn)) = client.connection(&target, ConnectionClass::Produce).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let topic_id = client.metadata().topic(topic).unwrap().topic_id;
        let data = if conn.max_version(0).unwrap() >= 13 {
            TopicProduceData::default().with_topic_id(topic_id.unwrap())
        } else {
            TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.into())))
        };
        let resp = conn
            .send(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![data.with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.clone())),
                    ])]),
            )
            .await
            .expect("Produce");
        let p = &resp.responses[0].partition_responses[0];
        let code = KafkaCode::from_i16(p.error_code);
        if code.is_retriable() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(code, KafkaCode::None, "{topic}-{partition}");
        return;
    }
    panic!("{topic}-{partition}: produce kept failing with retriable errors");
}

/// Polls `f` (every 100 ms, up to 20 s) until it gives `Some`: for effects that reach the
/// brokers through the metadata log a moment after the call returns.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    // Bounded by the clock, not by a count of tries: a call that waits out its API timeout
    // (a broker gone quiet) must not turn 200 tries into hours.
    let polling = async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    match tokio::time::timeout(Duration::from_secs(20), polling).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not seen within 20 s"),
    }
}

/// Milliseconds since the epoch: record timestamps must be recent, or time retention
/// (7 days) deletes them within `log.retention.check.interval.ms`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
