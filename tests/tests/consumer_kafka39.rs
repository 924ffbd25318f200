//! `group.protocol=consumer` against Kafka 3.9, whose brokers lack ConsumerGroupHeartbeat
//! (KIP-848 is GA from 4.0): a clear typed error by default, and with
//! `group.protocol.fallback=classic` a working classic group. Never a hang.

use std::time::{Duration, Instant};

use kafka_consumer::{Consumer, ConsumerConfig, ConsumerError, GroupProtocol, OffsetReset};
use kafka_core::client::{Client, ClientConfig, Target};
use kafka_core::KafkaCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tests::{cluster, unique_topic, Cluster, ClusterSpec};

fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::default().with_version("3.9.2"))
}

#[test]
fn kip848_on_kafka_39_is_a_clear_error_or_falls_back_to_classic() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let k = kafka();
        let topic = unique_topic("cons-39");
        let client = Client::connect(ClientConfig::new([k.bootstrap()]).unwrap())
            .await
            .unwrap();
        let resp = client
            .send_to(
                Target::AnyBroker,
                CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_num_partitions(2)
                        .with_replication_factor(1)])
                    .with_timeout_ms(30_000),
            )
            .await
            .unwrap();
        assert_eq!(
            KafkaCode::from_i16(resp.topics[0].error_code),
            KafkaCode::None
        );
        let cfg = |fallback: bool| {
            ConsumerConfig::builder(ClientConfig::new([k.bootstrap()]).unwrap())
                .group_id(unique_topic("g-39"))
                .group_protocol(GroupProtocol::Consumer)
                .group_protocol_fallback(fallback)
                .auto_offset_reset(OffsetReset::Earliest)
                .build()
                .unwrap()
        };
        let mut strict = Consumer::connect(cfg(false)).await.unwrap();
        strict.subscribe([topic.clone()]).unwrap();
        let started = Instant::now();
        let e = strict.poll(Duration::from_secs(30)).await.unwrap_err();
        assert!(matches!(e, ConsumerError::GroupProtocolUnsupported), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20), "slow to fail");

        let mut fallback = Consumer::connect(cfg(true)).await.unwrap();
        fallback.subscribe([topic.clone()]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while fallback.assignment().len() < 2 {
            assert!(Instant::now() < deadline, "fallback never joined");
            let _ = fallback.poll(Duration::from_millis(300)).await.unwrap();
        }
        assert_eq!(fallback.group_protocol(), Some(GroupProtocol::Classic));
        assert!(fallback.group_membership().is_some());
        fallback.close().await.unwrap();
    });
}
