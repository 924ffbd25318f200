//! A short tour of kafka-core against a live cluster: connect, describe the cluster, create a
//! topic, write a batch of records (lz4) to its leader, read them back, delete the topic.
//!
//! `cargo run -p kafka-core --example tour -- 127.0.0.1:9092` (or `scripts/tour`, which starts a
//! local broker first when `KAFKA_BOOTSTRAP` is not set).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_core::client::{Client, ClientConfig, ConnectionClass, Target};
use kafka_core::codec::compression::{Compression, Compressor};
use kafka_core::codec::records::{BatchDecoder, BatchOptions, Header, RecordBatchBuilder};
use kafka_core::KafkaCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, FetchRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let bootstrap = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("KAFKA_BOOTSTRAP").ok())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string());

    // 1. Connect and describe the cluster.
    let client = Client::connect(ClientConfig::new([bootstrap.as_str()])?).await?;
    let meta = client.refresh_all_metadata().await?;
    println!("connected to {bootstrap}");
    println!(
        "cluster {} — controller {:?}",
        meta.cluster_id().unwrap_or("?"),
        meta.controller_id()
    );
    for b in meta.brokers() {
        println!(
            "  broker {} at {} (rack {})",
            b.node_id,
            b.address(),
            b.rack.as_deref().unwrap_or("-")
        );
    }

    // 2. Create a topic.
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = format!("tour-{stamp}");
    let name = TopicName(StrBytes::from_string(topic.clone()));
    let created = client
        .send_to(
            Target::AnyBroker,
            CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(name.clone())
                    .with_num_partitions(3)
                    .with_replication_factor(1)])
                .with_timeout_ms(30_000),
        )
        .await?;
    let code = KafkaCode::from_i16(created.topics[0].error_code);
    if code != KafkaCode::None {
        return Err(format!("create topic {topic}: {code:?}").into());
    }
    // Metadata propagates asynchronously: wait until the leader of partition 0 is known.
    let mut leader = None;
    for _ in 0..50 {
        let meta = client.refresh_metadata(&[topic.as_str()]).await?;
        leader = meta.leader(&topic, 0);
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = leader.ok_or("no leader for the new topic")?;
    let topic_id = client
        .metadata()
        .topic(&topic)
        .and_then(|t| t.topic_id)
        .unwrap_or_default();
    println!(
        "created topic {topic} (3 partitions, id {topic_id}); partition 0 led by broker {}",
        leader.leader
    );

    // 3. Write one lz4 batch of five records to partition 0 (acks=all).
    let mut builder = RecordBatchBuilder::new(BatchOptions {
        compression: Compression::Lz4,
        ..BatchOptions::default()
    });
    let now = stamp as i64;
    for i in 0..5 {
        let key = format!("key-{i}");
        let value = format!("hello from kafka-rs, record {i}");
        let headers = [Header {
            key: b"source",
            value: Some(b"tour"),
        }];
        builder.append(
            now + i,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &headers,
        )?;
    }
    let batch = builder.seal(&mut Compressor::new())?;
    let target = Target::leader_of(topic.clone(), 0);
    let (_, conn) = client.connection(&target, ConnectionClass::Produce).await?;
    let produce_version = conn.max_version(0).ok_or("broker lacks Produce")?;
    // Produce v13 (KIP-516) names topics by id, earlier versions by name.
    let topic_data = if produce_version >= 13 {
        TopicProduceData::default().with_topic_id(topic_id)
    } else {
        TopicProduceData::default().with_name(name.clone())
    };
    let produced = conn
        .send(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![topic_data.with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.clone())),
                ])]),
        )
        .await?;
    let part = &produced.responses[0].partition_responses[0];
    let code = KafkaCode::from_i16(part.error_code);
    if code != KafkaCode::None {
        return Err(format!("produce: {code:?}").into());
    }
    println!(
        "wrote a {}-byte lz4 batch of 5 records at Produce v{produce_version}: base offset {}",
        batch.len(),
        part.base_offset
    );

    // 4. Read them back.
    let (_, conn) = client.connection(&target, ConnectionClass::Fetch).await?;
    let fetch_version = conn.max_version(1).ok_or("broker lacks Fetch")?;
    let fetch_topic = if fetch_version >= 13 {
        FetchTopic::default().with_topic_id(topic_id)
    } else {
        FetchTopic::default().with_topic(name.clone())
    };
    let fetched = conn
        .send(
            FetchRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_topic.with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(part.base_offset)
                        .with_partition_max_bytes(1 << 20),
                ])]),
        )
        .await?;
    let pdata = &fetched.responses[0].partitions[0];
    let records: Bytes = pdata.records.clone().unwrap_or_default();
    println!(
        "read back at Fetch v{fetch_version} (high watermark {}):",
        pdata.high_watermark
    );
    let mut decoder = BatchDecoder::default();
    let mut n = 0;
    for batch in decoder.batches(records) {
        let batch = batch?;
        for record in batch.records() {
            let r = record?;
            let headers: Vec<String> = r
                .headers()
                .filter_map(|h| h.ok())
                .map(|h| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(h.key),
                        String::from_utf8_lossy(h.value.unwrap_or_default())
                    )
                })
                .collect();
            println!(
                "  offset {} ts {} key {:?} value {:?} headers [{}]",
                r.offset(),
                r.timestamp(),
                String::from_utf8_lossy(r.key().unwrap_or_default()),
                String::from_utf8_lossy(r.value().unwrap_or_default()),
                headers.join(", ")
            );
            n += 1;
        }
    }
    if n != 5 {
        return Err(format!("expected 5 records back, got {n}").into());
    }

    // 5. Clean up.
    client
        .send_to(
            Target::AnyBroker,
            DeleteTopicsRequest::default()
                .with_topic_names(vec![name])
                .with_timeout_ms(30_000),
        )
        .await?;
    println!("deleted topic {topic}; tour done");
    Ok(())
}
