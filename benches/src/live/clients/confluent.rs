//! confluent-kafka (the Rust crate, a translation of the Java client): `KafkaProducer::send`
//! on its byte-slice path (no serializer; values written straight into the batch), each
//! returned `KafkaFuture` awaited by the collector; `KafkaConsumer` (KIP-848 protocol, the
//! only one it has) with a manual assignment, `seek_to_beginning` and `poll`, values as
//! `Bytes`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confluent_kafka::common::serialization::{ByteArraySerializer, BytesDeserializer};
use confluent_kafka::common::TopicPartition;
use confluent_kafka::consumer::{Consumer, ConsumerConfig, KafkaConsumer};
use confluent_kafka::producer::{KafkaProducer, Producer, ProducerConfig, ProducerRecord};

use crate::live::args::{Acks, Compression};
use crate::live::driver::{
    AckCollector, ConsumeJob, Consumed, LiveConsumer, LiveProducer, ProduceJob,
};
use crate::live::measure::{AckLog, Progress};
use crate::live::LiveError;

const VERSION: &str = "confluent-kafka 1.0";

fn props(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `KafkaProducer<Vec<u8>, Vec<u8>>::send` with `&[u8]` records.
pub struct ConfluentProducer {
    producer: KafkaProducer<Vec<u8>, Vec<u8>>,
}

impl LiveProducer for ConfluentProducer {
    const NAME: &'static str = "confluent-kafka";

    fn version() -> String {
        VERSION.into()
    }

    async fn connect(job: &ProduceJob) -> Result<Self, LiveError> {
        let s = &job.spec;
        let config = ProducerConfig::new(&props(&[
            ("bootstrap.servers", job.bootstrap.clone()),
            (
                "client.id",
                format!("live-confluent-{}", std::process::id()),
            ),
            (
                "acks",
                match s.acks {
                    Acks::All => "all",
                    Acks::Leader => "1",
                    Acks::None => "0",
                }
                .into(),
            ),
            ("enable.idempotence", s.idempotent.to_string()),
            ("linger.ms", s.linger_ms.to_string()),
            ("batch.size", s.batch_size.to_string()),
            (
                "compression.type",
                match s.compression {
                    Compression::None => "none",
                    Compression::Lz4 => "lz4",
                    Compression::Zstd => "zstd",
                }
                .into(),
            ),
        ]))
        .map_err(|e| LiveError::client(Self::NAME, e))?;
        let producer = KafkaProducer::new(
            config,
            ByteArraySerializer::default(),
            ByteArraySerializer::default(),
        )
        .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(ConfluentProducer { producer })
    }

    async fn produce(
        &mut self,
        job: &ProduceJob,
        count: u64,
        acks: &Arc<AckLog>,
    ) -> Result<(), LiveError> {
        let collector = AckCollector::start(acks.clone());
        let topic = &job.spec.common.topic;
        let value: &[u8] = &job.payload;
        for _ in 0..count {
            let sent = Instant::now();
            let record = ProducerRecord::<&[u8], &[u8]>::new(topic.clone(), Some(value));
            match self.producer.send(record, None).await {
                Ok(future) => collector.push(sent, async move { future.get().await }),
                Err(e) => acks.fail(e),
            }
        }
        collector.finish().await;
        Ok(())
    }

    async fn close(self) -> Result<(), LiveError> {
        self.producer
            .close()
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))
    }
}

/// `KafkaConsumer<Bytes, Bytes>` with `assign` + `seek_to_beginning` + `poll`.
pub struct ConfluentConsumer {
    consumer: KafkaConsumer<Bytes, Bytes>,
}

impl LiveConsumer for ConfluentConsumer {
    const NAME: &'static str = "confluent-kafka";

    fn version() -> String {
        VERSION.into()
    }

    async fn connect(job: &ConsumeJob) -> Result<Self, LiveError> {
        let config = ConsumerConfig::new(&props(&[
            ("bootstrap.servers", job.bootstrap.clone()),
            (
                "client.id",
                format!("live-confluent-{}", std::process::id()),
            ),
            ("group.protocol", "consumer".into()),
            ("enable.auto.commit", "false".into()),
            ("auto.offset.reset", "earliest".into()),
        ]))
        .map_err(|e| LiveError::client(Self::NAME, e))?;
        let consumer = KafkaConsumer::new(
            config,
            BytesDeserializer::default(),
            BytesDeserializer::default(),
        )
        .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(ConfluentConsumer { consumer })
    }

    async fn consume(
        &mut self,
        job: &ConsumeJob,
        progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        let want = job.spec.common.records;
        let partitions: Vec<TopicPartition> = (0..job.partitions)
            .map(|p| TopicPartition::new(job.spec.common.topic.as_str(), p))
            .collect();
        self.consumer
            .assign(partitions.clone())
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        self.consumer
            .seek_to_beginning(&partitions)
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        let mut got = Consumed::default();
        while got.records < want {
            let records = self
                .consumer
                .poll(Duration::from_millis(100))
                .await
                .map_err(|e| LiveError::client(Self::NAME, e))?;
            for r in records.into_iter().take((want - got.records) as usize) {
                got.records += 1;
                got.value_bytes += r.value().map_or(0, |v| v.len() as u64);
            }
            progress.check(got.records)?;
        }
        Ok(got)
    }

    async fn close(mut self) -> Result<(), LiveError> {
        self.consumer
            .close()
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))
    }
}
