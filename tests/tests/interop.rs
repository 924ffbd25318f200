//! What our record-batch builder writes, other clients read back exactly: kcat (librdkafka)
//! and Kafka's own Java console consumer, in every codec, through a real broker.

use std::time::Duration;

use kafka_core::client::{Client, ClientConfig, ConnectionClass, Target};
use kafka_core::codec::compression::{Compression, Compressor};
use kafka_core::codec::records::{BatchOptions, Header, RecordBatchBuilder};
use kafka_core::KafkaCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tests::{cluster, unique_topic, ClusterSpec};

/// The records written for `codec`: (key, value, headers).
type Rec = (Option<String>, Option<String>, Vec<(String, String)>);

fn records(codec: &str) -> Vec<Rec> {
    let mut out: Vec<Rec> = (0..6)
        .map(|i| (Some(format!("k{i}")), Some(format!("v{i}-{codec}")), vec![]))
        .collect();
    out.push((
        Some("big".into()),
        Some(format!("{codec}:{}", "0123456789".repeat(300))),
        vec![],
    ));
    out.push((
        Some("hdr".into()),
        Some("with headers".into()),
        vec![("h1".into(), "x".into()), ("trace".into(), "abc".into())],
    ));
    out.push((Some("tombstone".into()), None, vec![]));
    out.push((None, Some(format!("no key {codec}")), vec![]));
    out
}

async fn create_topic(client: &Client, topic: &str) {
    let resp = client
        .send_to(
            Target::AnyBroker,
            CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_num_partitions(1)
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
        if meta.leader(topic, 0).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader for {topic}");
}

async fn produce(client: &Client, topic: &str, codec: Compression, recs: &[Rec]) {
    let mut builder = RecordBatchBuilder::new(BatchOptions {
        compression: codec,
        ..BatchOptions::default()
    });
    for (i, (k, v, hs)) in recs.iter().enumerate() {
        let headers: Vec<Header<'_>> = hs
            .iter()
            .map(|(k, v)| Header {
                key: k.as_bytes(),
                value: Some(v.as_bytes()),
            })
            .collect();
        builder
            .append(
                1_700_000_000_000 + i as i64,
                k.as_deref().map(str::as_bytes),
                v.as_deref().map(str::as_bytes),
                &headers,
            )
            .unwrap();
    }
    let batch = builder.seal(&mut Compressor::new()).unwrap();
    // Right after creation the metadata can name a leader before that broker has taken the
    // partition over (NOT_LEADER_OR_FOLLOWER): retry retriable codes as a producer would.
    for _attempt in 0..50 {
        let target = Target::leader_of(topic.to_string(), 0);
        let (_, conn) = client
            .connection(&target, ConnectionClass::Produce)
            .await
            .unwrap();
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
                            .with_index(0)
                            .with_records(Some(batch.clone())),
                    ])]),
            )
            .await
            .expect("Produce");
        let p = &resp.responses[0].partition_responses[0];
        let code = KafkaCode::from_i16(p.error_code);
        if code.is_retriable() {
            client.refresh_metadata(&[topic]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(code, KafkaCode::None, "{topic}");
        assert_eq!(p.base_offset, 0);
        return;
    }
    panic!("{topic}: produce kept failing with retriable errors");
}

/// kcat's view: one line per record, `offset|key|value|headers`, NULL for nulls (-Z).
fn kcat_read(bootstrap: &str, topic: &str) -> Vec<String> {
    tests::kcat_read(bootstrap, topic, &[], "%o|%k|%s|%h\n")
}

fn kcat_expected(recs: &[Rec]) -> Vec<String> {
    recs.iter()
        .enumerate()
        .map(|(i, (k, v, hs))| {
            let h: Vec<String> = hs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{i}|{}|{}|{}",
                k.as_deref().unwrap_or("NULL"),
                v.as_deref().unwrap_or("NULL"),
                h.join(",")
            )
        })
        .collect()
}

/// The Java console consumer's view: `headers<TAB>key<TAB>value`.
fn java_expected(recs: &[Rec]) -> Vec<String> {
    recs.iter()
        .map(|(k, v, hs)| {
            let h = if hs.is_empty() {
                "NO_HEADERS".to_string()
            } else {
                hs.iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!(
                "{h}\t{}\t{}",
                k.as_deref().unwrap_or("null"),
                v.as_deref().unwrap_or("null")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_and_java_consumer_read_back_our_batches_in_every_codec() {
    let kafka = cluster(ClusterSpec::default());
    let client = Client::connect(ClientConfig::new([kafka.bootstrap()]).unwrap())
        .await
        .unwrap();
    for codec in Compression::ALL {
        let topic = unique_topic(&format!("interop-{}", codec.name()));
        let recs = records(codec.name());
        create_topic(&client, &topic).await;
        produce(&client, &topic, codec, &recs).await;

        assert_eq!(
            kcat_read(kafka.bootstrap(), &topic),
            kcat_expected(&recs),
            "kcat reading our {} batch",
            codec.name()
        );

        let out = kafka.tool_ok(
            "console-consumer",
            &[
                "--bootstrap-server",
                kafka.bootstrap(),
                "--topic",
                &topic,
                // Assigned, not subscribed: no consumer group, no coordinator.
                "--partition",
                "0",
                "--offset",
                "earliest",
                "--max-messages",
                &recs.len().to_string(),
                "--timeout-ms",
                "30000",
                "--property",
                "print.key=true",
                "--property",
                "print.headers=true",
            ],
        );
        let lines: Vec<String> = out
            .lines()
            // Kafka 4.x warns that --property is deprecated (3.9 has no replacement option).
            .filter(|l| !l.starts_with("Processed a total") && !l.contains("is deprecated"))
            .map(str::to_string)
            .collect();
        assert_eq!(
            lines,
            java_expected(&recs),
            "Java console consumer reading our {} batch",
            codec.name()
        );
    }
}
