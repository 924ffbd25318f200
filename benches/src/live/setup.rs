//! The broker side of a run, through `kafka-core` so that no peer client is needed: find or
//! start the broker, create the topic, count the records it holds.

use std::time::{Duration, Instant};

use kafka_core::client::{Client, ClientConfig, ErrorContext, Target};
use kafka_core::KafkaCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::live::LiveError;

/// The bootstrap address to use: the one given, or the PLAINTEXT listener of the cluster
/// the repository's kit starts (`scripts/kafka up`, which honours `KAFKA_KIT_PORT_OFFSET`
/// and `KAFKA_BOOTSTRAP`). The kit's cluster is left running for the next run.
pub fn resolve_bootstrap(given: Option<&str>) -> Result<String, LiveError> {
    if let Some(b) = given {
        return Ok(b.to_string());
    }
    eprintln!("live: no --bootstrap; starting (or reusing) the kit's broker: scripts/kafka up");
    // The kit reports failure by panicking with the script's output (it is made for test
    // binaries); turn that into an error here.
    let started = std::panic::catch_unwind(|| tests::cluster(tests::ClusterSpec::default()));
    match started {
        Ok(cluster) => Ok(cluster.bootstrap().to_string()),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the kit panicked".into());
            Err(LiveError::Setup(why))
        }
    }
}

/// A `kafka-core` client for setup work.
pub async fn connect(bootstrap: &str) -> Result<Client, LiveError> {
    let servers: Vec<&str> = bootstrap.split(',').map(str::trim).collect();
    let config = ClientConfig::new(servers)
        .map_err(|e| LiveError::Setup(format!("bootstrap {bootstrap:?}: {e}")))?
        .with_default_api_timeout(Duration::from_secs(20));
    Client::connect(config)
        .await
        .map_err(|e| LiveError::Setup(format!("cannot connect to {bootstrap}: {e}")))
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Creates `topic` with `partitions` partitions (replication factor 1, or 3 on a cluster of
/// three brokers or more) unless it exists, then waits until every partition has a leader.
/// Returns the partition count the topic has (an existing topic keeps its own).
pub async fn ensure_topic(client: &Client, topic: &str, partitions: i32) -> Result<i32, LiveError> {
    let meta = client
        .refresh_metadata(&[topic])
        .await
        .map_err(|e| LiveError::Setup(format!("metadata: {e}")))?;
    let exists = meta
        .topic(topic)
        .is_some_and(|t| t.error == KafkaCode::None && !t.partitions.is_empty());
    if !exists {
        let replication: i16 = if meta.brokers().count() >= 3 { 3 } else { 1 };
        let resp = client
            .send_to(
                Target::Controller,
                CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(topic_name(topic))
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication)])
                    .with_timeout_ms(30_000),
            )
            .await
            .map_err(|e| LiveError::Setup(format!("CreateTopics {topic}: {e}")))?;
        let code = resp
            .topics
            .first()
            .map_or(KafkaCode::None, |t| KafkaCode::from_i16(t.error_code));
        if code != KafkaCode::None && code != KafkaCode::TopicAlreadyExists {
            return Err(LiveError::Setup(format!("CreateTopics {topic}: {code:?}")));
        }
        eprintln!(
            "live: created topic {topic} ({partitions} partitions, replication {replication})"
        );
    }
    wait_for_leaders(client, topic).await
}

/// Waits (up to 60 s) until metadata names a leader for every partition of `topic`.
pub async fn wait_for_leaders(client: &Client, topic: &str) -> Result<i32, LiveError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let meta = client
            .refresh_metadata(&[topic])
            .await
            .map_err(|e| LiveError::Setup(format!("metadata: {e}")))?;
        if let Some(t) = meta.topic(topic) {
            if !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader.is_some()) {
                return Ok(t.partitions.len() as i32);
            }
        }
        if Instant::now() > deadline {
            return Err(LiveError::Setup(format!(
                "topic {topic} has no leader for every partition after 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The partition count of an existing topic; an error naming the topic when it does not exist.
pub async fn partition_count(client: &Client, topic: &str) -> Result<i32, LiveError> {
    let meta = client
        .refresh_metadata(&[topic])
        .await
        .map_err(|e| LiveError::Setup(format!("metadata: {e}")))?;
    match meta.topic(topic) {
        Some(t) if t.error == KafkaCode::None && !t.partitions.is_empty() => {
            Ok(t.partitions.len() as i32)
        }
        Some(t) => Err(LiveError::Setup(format!("topic {topic}: {:?}", t.error))),
        None => Err(LiveError::Setup(format!("topic {topic} does not exist"))),
    }
}

async fn list_offset(
    client: &Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<i64, LiveError> {
    client
        .retry("list offsets", || async {
            let resp = client
                .send_to(
                    Target::leader_of(topic, partition),
                    ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_topics(vec![ListOffsetsTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(vec![ListOffsetsPartition::default()
                                .with_partition_index(partition)
                                .with_timestamp(timestamp)])]),
                )
                .await?;
            let p = resp
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .cloned()
                .unwrap_or_default();
            client.check(
                p.error_code,
                ErrorContext::new()
                    .api("ListOffsets")
                    .partition(topic, partition),
            )?;
            Ok(p.offset)
        })
        .await
        .map_err(|e| LiveError::Setup(format!("ListOffsets {topic}-{partition}: {e}")))
}

/// Records in `topic`: the sum over its partitions of the high watermark minus the log
/// start offset (transaction markers would count too; the runs write none).
pub async fn record_count(client: &Client, topic: &str) -> Result<u64, LiveError> {
    let partitions = partition_count(client, topic).await?;
    let mut total = 0u64;
    for p in 0..partitions {
        let earliest = list_offset(client, topic, p, -2).await?;
        let latest = list_offset(client, topic, p, -1).await?;
        total += u64::try_from(latest - earliest).unwrap_or(0);
    }
    Ok(total)
}
