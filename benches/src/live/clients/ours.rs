//! Our own clients: `kafka-producer` (issue 4) and `kafka-consumer` (issue 5).
//!
//! The producer is wired. The consumer is not yet: `kafka-consumer` has no API yet. Wiring
//! it is this file only: build the consumer in `connect`, and in `consume` assign every
//! partition from the beginning and count records and value bytes until it has
//! `job.spec.common.records`, calling `progress.check` now and then (see `krafka.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_core::codec::compression::Compression as OurCompression;
use kafka_producer::{Acks as OurAcks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};

use crate::live::args::{Acks, Compression};
use crate::live::driver::{
    AckCollector, ConsumeJob, Consumed, LiveConsumer, LiveProducer, ProduceJob,
};
use crate::live::measure::{AckLog, Progress};
use crate::live::LiveError;

const CONSUMER_MISSING: &str = "kafka-consumer has no consumer API yet (issue 5); implement \
     LiveConsumer in benches/src/live/clients/ours.rs when it lands";

/// `kafka-producer`: `Producer::send` (returns once the record is in a batch; its
/// `DeliveryFuture` resolves to the ack), the same shape as krafka's `enqueue`.
pub struct OursProducer {
    producer: Producer,
    /// The topic as `&'static str`: a `ProducerRecord` takes `Cow<'static, str>`, and a
    /// service names its topics with constants; leaked once per run, not per record.
    topic: &'static str,
}

impl LiveProducer for OursProducer {
    const NAME: &'static str = "ours";

    fn version() -> String {
        format!("kafka-producer {}", env!("CARGO_PKG_VERSION"))
    }

    async fn connect(job: &ProduceJob) -> Result<Self, LiveError> {
        let s = &job.spec;
        let servers: Vec<&str> = job.bootstrap.split(',').map(str::trim).collect();
        let config = ProducerConfig::new(servers)
            .map_err(|e| LiveError::client(Self::NAME, e))?
            .acks(match s.acks {
                Acks::All => OurAcks::All,
                Acks::Leader => OurAcks::Leader,
                Acks::None => OurAcks::None,
            })
            .idempotence(s.idempotent)
            .linger(Duration::from_millis(s.linger_ms))
            .batch_size(s.batch_size)
            .compression(match s.compression {
                Compression::None => OurCompression::None,
                Compression::Lz4 => OurCompression::Lz4,
                Compression::Zstd => OurCompression::Zstd,
            });
        let producer = Producer::new(config)
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(OursProducer {
            producer,
            topic: Box::leak(s.common.topic.clone().into_boxed_str()),
        })
    }

    async fn produce(
        &mut self,
        job: &ProduceJob,
        count: u64,
        acks: &Arc<AckLog>,
    ) -> Result<(), LiveError> {
        let collector: AckCollector<DeliveryFuture> = AckCollector::start(acks.clone());
        for _ in 0..count {
            let sent = Instant::now();
            match self
                .producer
                .send(ProducerRecord::new(self.topic, job.payload.clone()))
                .await
            {
                Ok(delivery) => collector.push(sent, delivery),
                Err(e) => acks.fail(e),
            }
        }
        collector.finish().await;
        Ok(())
    }

    async fn close(self) -> Result<(), LiveError> {
        self.producer
            .close(Duration::from_secs(30))
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))
    }
}

/// `kafka-consumer` (not wired yet: every call fails with [`LiveError::NotWired`]).
#[derive(Debug)]
pub struct OursConsumer;

impl LiveConsumer for OursConsumer {
    const NAME: &'static str = "ours";

    fn version() -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn ready() -> Result<(), LiveError> {
        Err(LiveError::NotWired(CONSUMER_MISSING))
    }

    async fn connect(_job: &ConsumeJob) -> Result<Self, LiveError> {
        Err(LiveError::NotWired(CONSUMER_MISSING))
    }

    async fn consume(
        &mut self,
        _job: &ConsumeJob,
        _progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        Err(LiveError::NotWired(CONSUMER_MISSING))
    }

    async fn close(self) -> Result<(), LiveError> {
        Ok(())
    }
}
