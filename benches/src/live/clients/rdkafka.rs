//! librdkafka through rust-rdkafka: the baseline.
//!
//! Produce: its fastest path, a `ThreadedProducer` (librdkafka's queue, a background thread
//! serving delivery reports) with a delivery callback. The send instant travels in the
//! message's opaque pointer as nanoseconds since the context was made, so the callback
//! needs no allocation and no map. Consume: `BaseConsumer::poll` (`rdkafka`) and
//! `StreamConsumer` (`rdkafka-stream`), both on an assignment of every partition from the
//! beginning (no group, no commits).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::live::args::{Acks, Compression};
use crate::live::driver::{ConsumeJob, Consumed, LiveConsumer, LiveProducer, ProduceJob};
use crate::live::measure::{AckLog, Progress};
use crate::live::LiveError;

fn version() -> String {
    format!("librdkafka {}", rdkafka::util::get_rdkafka_version().1)
}

/// The producer's context: where delivery reports go.
struct Delivery {
    base: Instant,
    log: Mutex<Arc<AckLog>>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    /// Nanoseconds from `base` to the start of the send.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match result {
            Ok(_) => {
                let now = self.base.elapsed().as_nanos() as u64;
                log.ack(Duration::from_nanos(now.saturating_sub(sent_at as u64)));
            }
            Err((e, _)) => log.fail(e),
        }
    }
}

/// `ThreadedProducer` with delivery callbacks.
pub struct RdkafkaProducer {
    producer: ThreadedProducer<Delivery>,
}

fn common_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", format!("live-rdkafka-{}", std::process::id()));
    c
}

impl LiveProducer for RdkafkaProducer {
    const NAME: &'static str = "rdkafka";

    fn version() -> String {
        version()
    }

    async fn connect(job: &ProduceJob) -> Result<Self, LiveError> {
        let s = &job.spec;
        let mut c = common_config(&job.bootstrap);
        c.set(
            "acks",
            match s.acks {
                Acks::All => "all",
                Acks::Leader => "1",
                Acks::None => "0",
            },
        )
        .set("enable.idempotence", s.idempotent.to_string())
        .set("linger.ms", s.linger_ms.to_string())
        .set("batch.size", s.batch_size.to_string())
        .set(
            "compression.type",
            match s.compression {
                Compression::None => "none",
                Compression::Lz4 => "lz4",
                Compression::Zstd => "zstd",
            },
        );
        let context = Delivery {
            base: Instant::now(),
            log: Mutex::new(Arc::new(AckLog::with_capacity(0))),
        };
        let producer: ThreadedProducer<Delivery> = c
            .create_with_context(context)
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(RdkafkaProducer { producer })
    }

    async fn produce(
        &mut self,
        job: &ProduceJob,
        count: u64,
        acks: &Arc<AckLog>,
    ) -> Result<(), LiveError> {
        *self
            .producer
            .context()
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = acks.clone();
        let producer = &self.producer;
        let topic = job.spec.common.topic.as_str();
        let payload: &[u8] = &job.payload;
        let timeout = job.spec.common.timeout;
        let stall = job.spec.common.stall_after();
        // librdkafka's API blocks; keep the runtime's other worker free meanwhile.
        tokio::task::block_in_place(|| {
            let base = producer.context().base;
            let deadline = Instant::now() + timeout;
            for _ in 0..count {
                let sent = base.elapsed().as_nanos() as usize;
                let mut record =
                    BaseRecord::<(), [u8], usize>::with_opaque_to(topic, sent).payload(payload);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            // librdkafka's queue is full: its back-pressure.
                            record = r;
                            if Instant::now() > deadline {
                                return Err(LiveError::client(
                                    Self::NAME,
                                    "queue full until the deadline",
                                ));
                            }
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err((e, _)) => {
                            acks.fail(&e);
                            break;
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            producer
                .flush(left)
                .map_err(|e| LiveError::client(Self::NAME, e))?;
            let mut progress = Progress::new(Self::NAME, count, timeout, stall);
            while acks.done() < count {
                progress.check(acks.done())?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
    }

    async fn close(self) -> Result<(), LiveError> {
        tokio::task::block_in_place(|| {
            self.producer
                .flush(Duration::from_secs(30))
                .map_err(|e| LiveError::client(Self::NAME, e))
        })
    }
}

fn consumer_config(job: &ConsumeJob) -> ClientConfig {
    let mut c = common_config(&job.bootstrap);
    // A group id is required by librdkafka's consumer even for assign(); nothing joins
    // or commits.
    c.set("group.id", format!("live-rdkafka-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    c
}

fn assign_from_beginning<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    job: &ConsumeJob,
    name: &'static str,
) -> Result<(), LiveError> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..job.partitions {
        tpl.add_partition_offset(&job.spec.common.topic, p, Offset::Beginning)
            .map_err(|e| LiveError::client(name, e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| LiveError::client(name, e))
}

/// `BaseConsumer::poll`.
pub struct RdkafkaBaseConsumer {
    consumer: BaseConsumer,
}

impl LiveConsumer for RdkafkaBaseConsumer {
    const NAME: &'static str = "rdkafka";

    fn version() -> String {
        version()
    }

    async fn connect(job: &ConsumeJob) -> Result<Self, LiveError> {
        let consumer: BaseConsumer = consumer_config(job)
            .create()
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(RdkafkaBaseConsumer { consumer })
    }

    async fn consume(
        &mut self,
        job: &ConsumeJob,
        progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        let want = job.spec.common.records;
        let consumer = &self.consumer;
        tokio::task::block_in_place(|| {
            assign_from_beginning(consumer, job, Self::NAME)?;
            let mut got = Consumed::default();
            while got.records < want {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        got.records += 1;
                        got.value_bytes += m.payload().map_or(0, |p| p.len() as u64);
                        if got.records % 4096 == 0 {
                            progress.check(got.records)?;
                        }
                    }
                    Some(Err(e)) => return Err(LiveError::client(Self::NAME, e)),
                    None => progress.check(got.records)?,
                }
            }
            Ok(got)
        })
    }

    async fn close(self) -> Result<(), LiveError> {
        drop(self.consumer);
        Ok(())
    }
}

/// `StreamConsumer::stream`.
pub struct RdkafkaStreamConsumer {
    consumer: StreamConsumer,
}

impl LiveConsumer for RdkafkaStreamConsumer {
    const NAME: &'static str = "rdkafka-stream";

    fn version() -> String {
        version()
    }

    async fn connect(job: &ConsumeJob) -> Result<Self, LiveError> {
        let consumer: StreamConsumer = consumer_config(job)
            .create()
            .map_err(|e| LiveError::client(Self::NAME, e))?;
        Ok(RdkafkaStreamConsumer { consumer })
    }

    async fn consume(
        &mut self,
        job: &ConsumeJob,
        progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        let want = job.spec.common.records;
        assign_from_beginning(&self.consumer, job, Self::NAME)?;
        let mut stream = self.consumer.stream();
        let mut got = Consumed::default();
        while got.records < want {
            match tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
                Ok(Some(Ok(m))) => {
                    got.records += 1;
                    got.value_bytes += m.payload().map_or(0, |p| p.len() as u64);
                    if got.records % 4096 == 0 {
                        progress.check(got.records)?;
                    }
                }
                Ok(Some(Err(e))) => return Err(LiveError::client(Self::NAME, e)),
                Ok(None) => return Err(LiveError::client(Self::NAME, "stream ended")),
                Err(_) => progress.check(got.records)?,
            }
        }
        Ok(got)
    }

    async fn close(self) -> Result<(), LiveError> {
        drop(self.consumer);
        Ok(())
    }
}
