//! krafka (pure Rust): `Producer::enqueue` (returns once the record is buffered; its
//! `DeliveryHandle` resolves to the ack) and a group-less `Consumer` with a manual
//! assignment read from the earliest offset with `poll`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use krafka::consumer::{AutoOffsetReset, Consumer};
use krafka::producer::{Acks as KAcks, DeliveryHandle, Producer};
use krafka::{Compression as KCompression, Kafka, Record};

use crate::live::args::{Acks, Compression};
use crate::live::driver::{
    AckCollector, ConsumeJob, Consumed, LiveConsumer, LiveProducer, ProduceJob,
};
use crate::live::measure::{AckLog, Progress};
use crate::live::LiveError;

const VERSION: &str = "krafka 0.28";

/// krafka fetches only inside `poll` and stops once 500 records are buffered (its
/// defaults, Java's `max.poll.records`): a ping-pong that measured 6x slower than this.
/// Raised to what librdkafka's defaults hold in memory at 100-byte records (roughly).
const MAX_POLL_RECORDS: i32 = 10_000;
const MAX_BUFFERED_RECORDS: i32 = 100_000;

async fn kafka(bootstrap: &str, name: &'static str) -> Result<Kafka, LiveError> {
    Kafka::builder(bootstrap)
        .client_id(format!("live-krafka-{}", std::process::id()))
        .connect()
        .await
        .map_err(|e| LiveError::client(name, e))
}

/// `Producer::enqueue` + `DeliveryHandle`.
pub struct KrafkaProducer {
    producer: Producer,
}

impl LiveProducer for KrafkaProducer {
    const NAME: &'static str = "krafka";

    fn version() -> String {
        VERSION.into()
    }

    async fn connect(job: &ProduceJob) -> Result<Self, LiveError> {
        let s = &job.spec;
        let producer = kafka(&job.bootstrap, Self::NAME)
            .await?
            .producer()
            .acks(match s.acks {
                Acks::All => KAcks::All,
                Acks::Leader => KAcks::Leader,
                Acks::None => KAcks::None,
            })
            .idempotent(s.idempotent)
            .linger(Duration::from_millis(s.linger_ms))
            .batch_size(s.batch_size)
            .compression(match s.compression {
                Compression::None => KCompression::None,
                Compression::Lz4 => KCompression::Lz4,
                Compression::Zstd => KCompression::Zstd,
            })
            .build()
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(KrafkaProducer { producer })
    }

    async fn produce(
        &mut self,
        job: &ProduceJob,
        count: u64,
        acks: &Arc<AckLog>,
    ) -> Result<(), LiveError> {
        let collector: AckCollector<DeliveryHandle> = AckCollector::start(acks.clone());
        let topic = job.spec.common.topic.as_str();
        for _ in 0..count {
            let sent = Instant::now();
            match self
                .producer
                .enqueue(Record::new(topic, job.payload.clone()))
                .await
            {
                Ok(handle) => collector.push(sent, handle),
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

/// A consumer without a group, every partition assigned, `poll` in a loop.
pub struct KrafkaConsumer {
    consumer: Consumer,
}

impl LiveConsumer for KrafkaConsumer {
    const NAME: &'static str = "krafka";

    fn version() -> String {
        VERSION.into()
    }

    fn note(_job: &ConsumeJob) -> Option<String> {
        Some(format!(
            "max_poll_records {MAX_POLL_RECORDS}, max_buffered_records {MAX_BUFFERED_RECORDS} \
             (krafka defaults 500/500)"
        ))
    }

    async fn connect(job: &ConsumeJob) -> Result<Self, LiveError> {
        let consumer = kafka(&job.bootstrap, Self::NAME)
            .await?
            .consumer_without_group()
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .max_poll_records(MAX_POLL_RECORDS)
            .max_buffered_records(MAX_BUFFERED_RECORDS)
            .build()
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(KrafkaConsumer { consumer })
    }

    async fn consume(
        &mut self,
        job: &ConsumeJob,
        progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        let want = job.spec.common.records;
        self.consumer
            .assign(&job.spec.common.topic, (0..job.partitions).collect())
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        let mut got = Consumed::default();
        while got.records < want {
            let batch = self
                .consumer
                .poll(Duration::from_millis(100))
                .await
                .map_err(|e| LiveError::client(Self::NAME, e))?;
            for r in batch.iter().take((want - got.records) as usize) {
                got.records += 1;
                got.value_bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            }
            progress.check(got.records)?;
        }
        Ok(got)
    }

    async fn close(self) -> Result<(), LiveError> {
        self.consumer
            .close()
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))
    }
}
