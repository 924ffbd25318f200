//! rskafka (pure Rust, by design minimal): one `BatchProducer` (linger + a `RecordAggregator`
//! of `batch.size` bytes) per partition, records spread round-robin over them since rskafka
//! has no partitioner; the consumer is one `PartitionClient::fetch_records` loop per
//! partition, run concurrently.
//!
//! What rskafka cannot do is said in the report's `note`: it has no idempotent producer
//! and always asks for `acks=all`. Its `produce` future only completes with the whole batch,
//! so the number of records waiting is bounded here by a semaphore worth 32 MiB of values
//! (the Java client's `buffer.memory`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::chrono::{DateTime, Utc};
use rskafka::client::partition::{
    Compression as RsCompression, PartitionClient, UnknownTopicHandling,
};
use rskafka::client::producer::aggregator::RecordAggregator;
use rskafka::client::producer::{BatchProducer, BatchProducerBuilder};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use tokio::sync::Semaphore;

use crate::live::args::{Acks, Compression};
use crate::live::driver::{
    AckCollector, ConsumeJob, Consumed, LiveConsumer, LiveProducer, ProduceJob,
};
use crate::live::measure::{AckLog, Progress};
use crate::live::LiveError;

const VERSION: &str = "rskafka 0.6";
/// Bytes of values allowed to wait for their batch (Java's `buffer.memory` default).
const BUFFER_BYTES: usize = 32 << 20;

async fn partition_clients(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    name: &'static str,
) -> Result<Vec<Arc<PartitionClient>>, LiveError> {
    let client = ClientBuilder::new(bootstrap.split(',').map(String::from).collect())
        .client_id(format!("live-rskafka-{}", std::process::id()))
        .build()
        .await
        .map_err(|e| LiveError::client(name, e))?;
    let mut out = Vec::new();
    for p in 0..partitions {
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Retry)
            .await
            .map_err(|e| LiveError::client(name, e))?;
        out.push(Arc::new(pc));
    }
    Ok(out)
}

/// The wall clock as rskafka wants it (its chrono has no `clock` feature).
fn now() -> DateTime<Utc> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// One `BatchProducer` per partition.
pub struct RskafkaProducer {
    producers: Vec<Arc<BatchProducer<RecordAggregator>>>,
    room: Arc<Semaphore>,
}

impl LiveProducer for RskafkaProducer {
    const NAME: &'static str = "rskafka";

    fn version() -> String {
        VERSION.into()
    }

    fn note(job: &ProduceJob) -> Option<String> {
        let mut n = vec!["no partitioner: records round-robin over the partitions".to_string()];
        if job.spec.idempotent {
            n.push("no idempotent producer in rskafka: ran without idempotence".into());
        }
        if job.spec.acks != Acks::All {
            n.push(format!(
                "rskafka always sends acks=all: --acks {} not applied",
                job.spec.acks.as_str()
            ));
        }
        Some(n.join("; "))
    }

    async fn connect(job: &ProduceJob) -> Result<Self, LiveError> {
        let s = &job.spec;
        let compression = match s.compression {
            Compression::None => RsCompression::NoCompression,
            Compression::Lz4 => RsCompression::Lz4,
            Compression::Zstd => RsCompression::Zstd,
        };
        let producers =
            partition_clients(&job.bootstrap, &s.common.topic, job.partitions, Self::NAME)
                .await?
                .into_iter()
                .map(|pc| {
                    Arc::new(
                        BatchProducerBuilder::new(pc)
                            .with_linger(Duration::from_millis(s.linger_ms))
                            .with_compression(compression)
                            .build(RecordAggregator::new(s.batch_size)),
                    )
                })
                .collect();
        let permits = (BUFFER_BYTES / s.size.max(1)).max(1);
        Ok(RskafkaProducer {
            producers,
            room: Arc::new(Semaphore::new(permits)),
        })
    }

    async fn produce(
        &mut self,
        job: &ProduceJob,
        count: u64,
        acks: &Arc<AckLog>,
    ) -> Result<(), LiveError> {
        let collector = AckCollector::start(acks.clone());
        let n = self.producers.len() as u64;
        for i in 0..count {
            let sent = Instant::now();
            let permit = self
                .room
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| LiveError::client(Self::NAME, e))?;
            let producer = self.producers[(i % n) as usize].clone();
            // rskafka takes owned Vec values: one copy per record, as its users pay too.
            let record = Record {
                key: None,
                value: Some(job.payload.to_vec()),
                headers: Default::default(),
                timestamp: now(),
            };
            collector.push(sent, async move {
                let r = producer.produce(record).await;
                drop(permit);
                r
            });
        }
        collector.finish().await;
        Ok(())
    }

    async fn close(self) -> Result<(), LiveError> {
        for p in &self.producers {
            p.flush()
                .await
                .map_err(|e| LiveError::client(Self::NAME, e))?;
        }
        Ok(())
    }
}

/// One fetch loop per partition.
pub struct RskafkaConsumer {
    partitions: Vec<Arc<PartitionClient>>,
}

/// Java's `max.partition.fetch.bytes` default.
const FETCH_BYTES: i32 = 1 << 20;

impl LiveConsumer for RskafkaConsumer {
    const NAME: &'static str = "rskafka";

    fn version() -> String {
        VERSION.into()
    }

    fn note(_job: &ConsumeJob) -> Option<String> {
        Some("no consumer in rskafka: one PartitionClient::fetch_records loop per partition, 1 MiB per fetch".into())
    }

    async fn connect(job: &ConsumeJob) -> Result<Self, LiveError> {
        Ok(RskafkaConsumer {
            partitions: partition_clients(
                &job.bootstrap,
                &job.spec.common.topic,
                job.partitions,
                Self::NAME,
            )
            .await?,
        })
    }

    async fn consume(
        &mut self,
        job: &ConsumeJob,
        progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        let want = job.spec.common.records;
        let claimed = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for pc in &self.partitions {
            let (pc, claimed, bytes) = (pc.clone(), claimed.clone(), bytes.clone());
            tasks.push(tokio::spawn(async move {
                let mut offset = pc
                    .get_offset(rskafka::client::partition::OffsetAt::Earliest)
                    .await?;
                loop {
                    if claimed.load(Ordering::Acquire) >= want {
                        return Ok::<(), rskafka::client::error::Error>(());
                    }
                    let (records, high_watermark) =
                        pc.fetch_records(offset, 1..FETCH_BYTES, 500).await?;
                    let Some(last) = records.last() else {
                        if offset >= high_watermark {
                            return Ok(()); // this partition is read to its end
                        }
                        continue;
                    };
                    offset = last.offset + 1;
                    // Claim at most what is still wanted, for the whole fetch at once.
                    let n = records.len() as u64;
                    let before = claimed.fetch_add(n, Ordering::AcqRel);
                    let take = n.min(want.saturating_sub(before)) as usize;
                    let b: u64 = records[..take]
                        .iter()
                        .map(|r| r.record.value.as_ref().map_or(0, |v| v.len() as u64))
                        .sum();
                    bytes.fetch_add(b, Ordering::AcqRel);
                }
            }));
        }
        loop {
            let done = claimed.load(Ordering::Acquire).min(want);
            if tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            if let Err(e) = progress.check(done) {
                for t in &tasks {
                    t.abort();
                }
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for t in tasks {
            t.await
                .map_err(|e| LiveError::client(Self::NAME, e))?
                .map_err(|e| LiveError::client(Self::NAME, e))?;
        }
        Ok(Consumed {
            records: claimed.load(Ordering::Acquire).min(want),
            value_bytes: bytes.load(Ordering::Acquire),
        })
    }

    async fn close(self) -> Result<(), LiveError> {
        Ok(())
    }
}
