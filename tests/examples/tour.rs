//! The main job: a tour of the library against a live Kafka cluster.
//!
//! `scripts/tour` (starts a local single-node Kafka unless `KAFKA_BOOTSTRAP` is given), or
//! `cargo run -p tests --example tour -- 127.0.0.1:9092`.
//!
//! 1. Admin: describe the cluster and create a topic.
//! 2. Producer: write keyed records (idempotent, lz4), then a transaction.
//! 3. Consumer: read them back in a consumer group and commit.
//! 4. Admin: the group's lag and the cluster health report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_admin::{Admin, AdminConfig, NewTopic};
use kafka_consumer::{Consumer, ConsumerConfig, OffsetReset};
use kafka_core::codec::compression::Compression;
use kafka_core::ClientConfig;
use kafka_producer::{Producer, ProducerConfig, ProducerRecord};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let bootstrap = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("KAFKA_BOOTSTRAP").ok())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string());
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = format!("tour-{stamp}");
    let group = format!("tour-group-{stamp}");

    // 1. The cluster, and a topic.
    let admin = Admin::connect(AdminConfig::from_properties([(
        "bootstrap.servers",
        bootstrap.clone(),
    )])?)
    .await?;
    let cluster = admin.describe_cluster().await?;
    println!("connected to {bootstrap}\n{cluster:#?}");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 1)], false)
        .await?
        .into_result()?;
    println!("created topic {topic} (3 partitions)");

    // 2. Produce: keyed records land where a Java producer would put them.
    let producer =
        Producer::new(ProducerConfig::new([bootstrap.as_str()])?.compression(Compression::Lz4))
            .await?;
    let mut acks = Vec::new();
    for i in 0..1000 {
        let record = ProducerRecord::new(topic.clone(), format!("event {i}"))
            .key(format!("user-{}", i % 10));
        acks.push(producer.send(record).await?);
    }
    let mut last = None;
    for a in acks {
        last = Some(a.await?);
    }
    println!(
        "produced 1000 records; the last at {:?}",
        last.expect("sent")
    );
    producer.close(Duration::from_secs(10)).await?;

    let txn = Producer::new(
        ProducerConfig::new([bootstrap.as_str()])?.transactional_id(format!("tour-tx-{stamp}")),
    )
    .await?;
    txn.init_transactions().await?;
    txn.begin_transaction()?;
    let a = txn
        .send(ProducerRecord::new(topic.clone(), "committed in a transaction").partition(0))
        .await?;
    txn.commit_transaction().await?;
    println!(
        "transaction committed (protocol v{}): {:?}",
        if txn.uses_transactions_v2() { 2 } else { 1 },
        a.await?
    );
    txn.close(Duration::from_secs(10)).await?;

    // 3. Consume in a group, commit.
    let mut consumer = Consumer::connect(
        ConsumerConfig::builder(ClientConfig::new([bootstrap.as_str()])?)
            .group_id(&group)
            .auto_offset_reset(OffsetReset::Earliest)
            .build()?,
    )
    .await?;
    consumer.subscribe([topic.as_str()])?;
    let mut read = 0;
    while read < 1001 {
        let records = consumer.poll(Duration::from_secs(10)).await?;
        if records.is_empty() {
            break;
        }
        read += records.len();
    }
    consumer.commit_sync().await?;
    println!("consumed {read} records in group {group} and committed");
    consumer.close().await?;

    // 4. Lag and health.
    println!("{}", admin.consumer_lag(&group).await?);
    println!("{}", admin.health_report().await?);
    Ok(())
}
