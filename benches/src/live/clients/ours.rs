//! Our own clients: `kafka-producer` (issue 4) and `kafka-consumer` (issue 5).
//!

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_consumer::{Consumer, ConsumerConfig, OffsetReset, TopicPartition};
use kafka_core::codec::compression::Compression as OurCompression;
use kafka_core::ClientConfig;
use kafka_producer::{Acks as OurAcks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};

use crate::live::args::{Acks, Compression};
use crate::live::driver::{
    AckCollector, ConsumeJob, Consumed, LiveConsumer, LiveProducer, ProduceJob,
};
use crate::live::measure::{AckLog, Progress};
use crate::live::LiveError;

/// `kafka-producer` through `Producer::send_with_token` and a `DeliveryHandler`: each
/// record's token is its send time, and the handler logs its ack latency. The shape of
/// rdkafka's delivery callbacks with an opaque, and our cheapest way to learn every outcome.
pub struct OursProducer {
    producer: Producer,
    /// The topic as `&'static str`: a `ProducerRecord` takes `Cow<'static, str>`, and a
    /// service names its topics with constants; leaked once per run, not per record.
    topic: &'static str,
    /// Where the handler logs (swapped per run, as rdkafka's context does).
    log: Arc<Mutex<Arc<AckLog>>>,
    base: Instant,
}

/// `kafka-producer` through `Producer::send`: each record's `DeliveryFuture` is awaited by a
/// collecting task (`ours-future`), the shape of krafka's `enqueue`.
pub struct OursFutureProducer(OursProducer);

async fn connect_ours(job: &ProduceJob, name: &'static str) -> Result<OursProducer, LiveError> {
    let s = &job.spec;
    let servers: Vec<&str> = job.bootstrap.split(',').map(str::trim).collect();
    let log = Arc::new(Mutex::new(Arc::new(AckLog::with_capacity(0))));
    let base = Instant::now();
    let handler_log = log.clone();
    let config = ProducerConfig::new(servers)
        .map_err(|e| LiveError::client(name, e))?
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
        })
        .delivery_handler(move |r: kafka_producer::Result<_>, sent_ns: u64| {
            let log = handler_log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match r {
                Ok(_) => {
                    let now = base.elapsed().as_nanos() as u64;
                    log.ack(Duration::from_nanos(now.saturating_sub(sent_ns)));
                }
                Err(e) => log.fail(e),
            }
        });
    let producer = Producer::new(config)
        .await
        .map_err(|e| LiveError::client(name, e))?;
    Ok(OursProducer {
        producer,
        topic: Box::leak(s.common.topic.clone().into_boxed_str()),
        log,
        base,
    })
}

impl LiveProducer for OursProducer {
    const NAME: &'static str = "ours";

    fn version() -> String {
        format!("kafka-producer {}", env!("CARGO_PKG_VERSION"))
    }

    async fn connect(job: &ProduceJob) -> Result<Self, LiveError> {
        connect_ours(job, Self::NAME).await
    }

    async fn produce(
        &mut self,
        job: &ProduceJob,
        count: u64,
        acks: &Arc<AckLog>,
    ) -> Result<(), LiveError> {
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = acks.clone();
        for _ in 0..count {
            let sent_ns = self.base.elapsed().as_nanos() as u64;
            let queued = self
                .producer
                .send_with_token(
                    ProducerRecord::new(self.topic, job.payload.clone()),
                    sent_ns,
                )
                .await;
            if let Err(e) = queued {
                acks.fail(e);
            }
        }
        self.producer
            .flush()
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))
    }

    async fn close(self) -> Result<(), LiveError> {
        self.producer
            .close(Duration::from_secs(30))
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))
    }
}

impl LiveProducer for OursFutureProducer {
    const NAME: &'static str = "ours-future";

    fn version() -> String {
        OursProducer::version()
    }

    async fn connect(job: &ProduceJob) -> Result<Self, LiveError> {
        connect_ours(job, Self::NAME).await.map(OursFutureProducer)
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
                .0
                .producer
                .send(ProducerRecord::new(self.0.topic, job.payload.clone()))
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
        self.0.close().await
    }
}

/// `kafka-consumer`: every partition assigned from the beginning, read batch by batch
/// (`poll_batches`, zero-copy record views), every value's length summed.
pub struct OursConsumer {
    consumer: Consumer,
}

impl std::fmt::Debug for OursConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OursConsumer")
    }
}

impl LiveConsumer for OursConsumer {
    const NAME: &'static str = "ours";

    fn version() -> String {
        format!("kafka-consumer {}", env!("CARGO_PKG_VERSION"))
    }

    fn ready() -> Result<(), LiveError> {
        Ok(())
    }

    async fn connect(job: &ConsumeJob) -> Result<Self, LiveError> {
        let servers: Vec<&str> = job.bootstrap.split(',').map(str::trim).collect();
        let client = ClientConfig::new(servers).map_err(|e| LiveError::client(Self::NAME, e))?;
        let config = ConsumerConfig::builder(client)
            .auto_offset_reset(OffsetReset::Earliest)
            .max_poll_records(100_000)
            .build()
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        let mut consumer = Consumer::connect(config)
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        let topic = &job.spec.common.topic;
        let parts = (0..job.partitions)
            .map(|p| TopicPartition::new(topic.as_str(), p))
            .collect::<Vec<_>>();
        consumer
            .assign(parts)
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(OursConsumer { consumer })
    }

    async fn consume(
        &mut self,
        job: &ConsumeJob,
        progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        let want = job.spec.common.records;
        let mut done = Consumed::default();
        while done.records < want {
            let batches = self
                .consumer
                .poll_batches(Duration::from_secs(1))
                .await
                .map_err(|e| LiveError::client(Self::NAME, e))?;
            'batches: for b in batches {
                for r in b.records() {
                    if done.records == want {
                        // The last poll may hold more than was asked for.
                        break 'batches;
                    }
                    let r = r.map_err(|e| LiveError::client(Self::NAME, e))?;
                    done.records += 1;
                    done.value_bytes += r.value().map_or(0, <[u8]>::len) as u64;
                }
            }
            progress.check(done.records)?;
        }
        Ok(done)
    }

    async fn close(self) -> Result<(), LiveError> {
        self.consumer
            .close()
            .await
            .map_err(|e| LiveError::client(Self::NAME, e))
    }
}
