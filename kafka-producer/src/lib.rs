//! `kafka-producer`: a Kafka producer built on `kafka-core`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kafka_producer::Error> {
//! use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! let producer = Producer::new(ProducerConfig::new(["127.0.0.1:9092"])?).await?;
//! // `send` waits only for buffer space; the returned future resolves on acknowledgement.
//! let delivery = producer.send(ProducerRecord::new("events", "hello").key("k1")).await?;
//! let meta = delivery.await?;
//! println!("written at {}-{}@{}", meta.topic, meta.partition, meta.offset);
//! producer.close(std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```
//!
//! * Records accumulate per partition ([`ProducerConfig::linger`], `batch_size`) into one
//!   pooled buffer each (kafka-core's `RecordBatchBuilder`); one produce request per broker
//!   carries the ready batches of all its partitions; up to `max.in.flight` requests are
//!   pipelined per connection, written in order.
//! * Idempotence is on by default (producer id, epoch, per-partition sequences; KIP-360 epoch
//!   bumps); transactions with `transactional.id` (protocol v1: AddPartitionsToTxn, KIP-447
//!   offsets with group metadata).
//! * Every record ends in exactly one outcome: its [`RecordMetadata`], or an [`Error`] whose
//!   [`outcome`](Error::outcome) says whether it may have been written anyway.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accumulator;
mod config;
mod error;
mod partitioner;
mod record;
mod sender;
mod stats;
mod transaction;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_core::client::Client;
use kafka_core::codec::compression::{CompressionLevels, Compressor};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

pub use config::{Acks, DeliveryHandler, ProducerConfig, PRODUCER_KEYS};
pub use error::{Error, Outcome, Result};
pub use partitioner::{
    murmur2, partition_for_key, Choice, DefaultPartitioner, PartitionContext, Partitioner,
    RoundRobinPartitioner,
};
pub use record::{DeliveryFuture, ProducerRecord, RecordHeader, RecordMetadata};
pub use stats::ProducerStats;
pub use transaction::ConsumerGroupMetadata;

use accumulator::{Accumulator, AccumulatorConfig, AppendError, Delivery, Followups, RecordParts};
use stats::Stats;
use transaction::TxnState;

/// A Kafka producer. Cheap to clone (a handle); `Send + Sync`. Dropping the last handle
/// sends what is buffered in the background and then stops; call [`close`](Self::close) to
/// wait for that.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    _handle: Arc<DropGuard>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct DropGuard(Arc<Inner>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.lock_acc().closing = true;
        self.0.wake.notify_one();
    }
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) config: ProducerConfig,
    acc: Mutex<Accumulator>,
    memory: Semaphore,
    pub(crate) wake: Arc<Notify>,
    pub(crate) progress: Notify,
    fatal: Mutex<Option<Error>>,
    /// `fatal` is set: lets `send` skip that lock on the hot path.
    has_fatal: AtomicBool,
    pub(crate) txn: Mutex<TxnState>,
    /// Serialises the transactional calls.
    pub(crate) txn_calls: tokio::sync::Mutex<()>,
    pub(crate) stats: Stats,
    pub(crate) closed_hard: AtomicBool,
    /// The current transaction has partitions or offsets at the coordinator (EndTxn needed).
    pub(crate) txn_started: AtomicBool,
    /// Transactions use protocol v2 (KIP-890): the coordinator's cluster has
    /// `transaction.version` >= 2 and supports EndTxn v5 and Produce v12.
    pub(crate) tv2: AtomicBool,
    refreshing: Arc<AtomicBool>,
}

impl Inner {
    pub(crate) fn lock_acc(&self) -> MutexGuard<'_, Accumulator> {
        self.acc.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn fatal(&self) -> Option<Error> {
        if !self.has_fatal.load(Ordering::Acquire) {
            return None;
        }
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_fatal(&self, e: Error) {
        {
            let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_some() {
                return;
            }
            tracing::error!(error = %e, "producer entered a fatal state");
            *f = Some(e.clone());
            self.has_fatal.store(true, Ordering::Release);
        }
        if self.config.transactional_id.is_some() {
            *self.txn.lock().unwrap_or_else(|e| e.into_inner()) = TxnState::Fatal(e.clone());
        }
        let f = self
            .lock_acc()
            .fail_unsent(&Error::Fatal { cause: Arc::new(e) });
        self.apply(f);
        self.wake.notify_one();
    }

    pub(crate) fn set_abortable(&self, e: Error) {
        let mut t = self.txn.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*t, TxnState::InTransaction | TxnState::Committing) {
            tracing::warn!(error = %e, "transaction must be aborted");
            *t = TxnState::Abortable(e);
        }
    }

    pub(crate) fn txn_in_progress(&self) -> bool {
        matches!(
            *self.txn.lock().unwrap_or_else(|e| e.into_inner()),
            TxnState::InTransaction | TxnState::Committing
        )
    }

    /// Acts on what a completion or expiry asks for.
    pub(crate) fn apply(&self, mut f: Followups) {
        if f.released > 0 {
            self.memory.add_permits(f.released);
        }
        self.stats.note(&f);
        if f.bump_epoch {
            self.lock_acc().bump_pending = true;
        }
        if f.refresh_metadata {
            self.refresh_metadata_soon();
        }
        if let Some(e) = f.abortable.take() {
            self.set_abortable(e);
        }
        if let Some(e) = f.fatal.take() {
            self.set_fatal(e);
        }
        f.resolve();
        if !f.settled.is_empty() {
            // Only now, with every callback and handler of these batches run, may `flush` and
            // `close` see them as done.
            self.lock_acc().settle(&f.settled);
        }
        self.progress.notify_waiters();
    }

    /// Starts one background metadata refresh of the known topics (none if one is running);
    /// the sender looks again when it ends.
    pub(crate) fn refresh_metadata_soon(&self) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.client.clone();
        let topics: Vec<String> = client.metadata().topics().map(|t| t.name.clone()).collect();
        let flag = self.refreshing.clone();
        let wake = self.wake.clone();
        tokio::spawn(async move {
            // Leaders move for a few hundred ms; don't hammer the brokers meanwhile.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(e) = client.refresh_metadata(&refs).await {
                tracing::debug!(error = %e, "metadata refresh failed");
            }
            flag.store(false, Ordering::Release);
            wake.notify_one();
        });
    }

    fn check_can_send(&self) -> Result<()> {
        if let Some(e) = self.fatal() {
            return Err(Error::Fatal { cause: Arc::new(e) });
        }
        // `closing` is checked again under the accumulator's lock by `append`.
        if self.closed_hard.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.config.transactional_id.is_some() {
            match &*self.txn.lock().unwrap_or_else(|e| e.into_inner()) {
                TxnState::InTransaction => {}
                TxnState::Abortable(e) => {
                    return Err(Error::AbortableTransaction {
                        cause: Arc::new(e.clone()),
                    })
                }
                other => {
                    return Err(Error::TransactionState(format!(
                        "send needs an open transaction (call begin_transaction); state is {other}"
                    )))
                }
            }
        }
        Ok(())
    }
}

/// Bytes a record takes in `buffer.memory`: an upper bound of its encoded size.
fn record_size(r: &ProducerRecord) -> usize {
    let k = r.key.as_ref().map_or(0, |k| k.len());
    let v = r.value.as_ref().map_or(0, |v| v.len());
    let h: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 10)
        .sum();
    // Length, attributes, timestamp and offset deltas, key and value lengths, header count.
    k + v + h + 5 + 1 + 10 + 5 + 5 + 5 + 5
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    /// Connects to the cluster and starts the sender. With `transactional.id`, call
    /// [`init_transactions`](Self::init_transactions) before the first transaction.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let client = Client::connect(config.client.clone()).await?;
        let acc_cfg = AccumulatorConfig {
            batch_size: config.batch_size,
            linger: config.linger,
            max_request_size: config.max_request_size,
            compression: config.compression,
            compression_level: config.compression_level,
            idempotent: config.idempotence,
            transactional: config.transactional_id.is_some(),
            max_in_flight: config.max_in_flight,
            delivery_timeout: config.delivery_timeout,
            retries: config.retries,
            retry_backoff: config.client.retry_backoff,
            handler: config.delivery_handler.clone().map(accumulator::Handler),
        };
        let seed = now_ms() as u64 ^ (std::process::id() as u64) << 32;
        let acc = Accumulator::new(
            acc_cfg,
            Compressor::with_levels(CompressionLevels::default()),
            seed,
        );
        let permits = config.buffer_memory.min(Semaphore::MAX_PERMITS);
        let inner = Arc::new(Inner {
            client,
            memory: Semaphore::new(permits),
            acc: Mutex::new(acc),
            wake: Arc::new(Notify::new()),
            progress: Notify::new(),
            fatal: Mutex::new(None),
            has_fatal: AtomicBool::new(false),
            txn: Mutex::new(if config.transactional_id.is_some() {
                TxnState::Uninitialized
            } else {
                TxnState::NotTransactional
            }),
            txn_calls: tokio::sync::Mutex::new(()),
            stats: Stats::default(),
            closed_hard: AtomicBool::new(false),
            txn_started: AtomicBool::new(false),
            tv2: AtomicBool::new(false),
            refreshing: Arc::new(AtomicBool::new(false)),
            config,
        });
        tokio::spawn(sender::run(inner.clone()));
        Ok(Producer {
            _handle: Arc::new(DropGuard(inner.clone())),
            inner,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// The cluster client underneath (metadata, raw requests).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Queues a record. Waits only for buffer space (`buffer.memory`) or the topic's first
    /// metadata, at most `max.block.ms`; the returned future resolves when the record is
    /// acknowledged (after `linger.ms` batching) or has failed.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let future = self.enqueue(record, Delivery::Future).await?;
        Ok(future.expect("append returns a future when asked for one"))
    }

    /// Queues a record like [`send`](Self::send), and calls `callback` once with its outcome
    /// instead of returning a future: the Java client's `send(record, callback)`, and the
    /// cheapest way to learn every record's outcome (no future to poll per record).
    ///
    /// The callback runs on the producer's sender task, after the record's batch is
    /// acknowledged or has failed, in offset order within the batch: keep it short and never
    /// block in it (hand work to a channel). A callback that panics is logged and ignored.
    /// When this returns an error the record was not queued and the callback is dropped
    /// without being called.
    pub async fn send_with_callback<F>(&self, record: ProducerRecord, callback: F) -> Result<()>
    where
        F: FnOnce(Result<RecordMetadata>) + Send + 'static,
    {
        self.enqueue(record, Delivery::Callback(Box::new(callback)))
            .await
            .map(drop)
    }

    /// Queues a record like [`send`](Self::send); its outcome goes, with `token`, to the
    /// [`DeliveryHandler`] of the configuration
    /// ([`ProducerConfig::delivery_handler`]): librdkafka's delivery reports with an opaque,
    /// and the cheapest way to track every record (nothing allocated per record). Fails with
    /// [`Error::Config`] when no handler is configured. When this returns an error the record
    /// was not queued and the handler is not called for it.
    pub async fn send_with_token(&self, record: ProducerRecord, token: u64) -> Result<()> {
        if self.inner.config.delivery_handler.is_none() {
            return Err(Error::Config {
                reason:
                    "send_with_token needs a delivery handler (ProducerConfig::delivery_handler)"
                        .into(),
            });
        }
        self.enqueue(record, Delivery::Token(token)).await.map(drop)
    }

    /// Queues many records; one result per record, in order.
    pub async fn send_all<I>(&self, records: I) -> Vec<Result<DeliveryFuture>>
    where
        I: IntoIterator<Item = ProducerRecord>,
    {
        let mut out = Vec::new();
        for r in records {
            out.push(self.send(r).await);
        }
        out
    }

    /// Sends one record and waits for its acknowledgement, without waiting for `linger.ms`:
    /// its batch goes out at once.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let topic = record.topic.clone();
        let fut = self.send(record).await?;
        self.inner.lock_acc().expedite(&topic, fut.partition());
        self.inner.wake.notify_one();
        fut.await
    }

    /// The path of every record: checks, buffer space, then the accumulator. The common
    /// case (buffer space free, topic known) is synchronous; only a record that must wait
    /// goes through the boxed slow path, so that the future of every `send` stays small (the
    /// slow path's metadata refresh alone is KiBs, which every send would copy otherwise).
    /// Clocks are read only where needed (the timestamp; `max.block.ms` only when blocking).
    async fn enqueue(
        &self,
        record: ProducerRecord,
        delivery: Delivery,
    ) -> Result<Option<DeliveryFuture>> {
        let size = self.admit(&record)?;
        let inner = &self.inner;
        let delivery = match inner.memory.try_acquire_many(size as u32) {
            Ok(p) => {
                p.forget();
                match self.append(&record, size, delivery) {
                    Ok(future) => return Ok(future),
                    Err(AppendError::UnknownTopic(delivery)) => {
                        inner.memory.add_permits(size);
                        delivery
                    }
                    Err(AppendError::Failed(e)) => {
                        self.undo(size);
                        return Err(e);
                    }
                }
            }
            Err(_) => delivery,
        };
        Box::pin(self.enqueue_waiting(record, size, delivery)).await
    }

    /// Checks that the producer takes records and that this one fits; returns its size in
    /// `buffer.memory`.
    fn admit(&self, record: &ProducerRecord) -> Result<usize> {
        let inner = &self.inner;
        inner.check_can_send()?;
        let size = record_size(record);
        let config = &inner.config;
        if size > config.max_request_size {
            return Err(Error::RecordTooLarge {
                size,
                limit: config.max_request_size,
                limit_name: "max.request.size",
            });
        }
        if size > config.buffer_memory {
            return Err(Error::RecordTooLarge {
                size,
                limit: config.buffer_memory,
                limit_name: "buffer.memory",
            });
        }
        Ok(size)
    }

    /// Gives back the buffer space of a record that was not queued.
    fn undo(&self, size: usize) {
        self.inner.memory.add_permits(size);
        // A batch sealed on the way may have failed; the sender fails it.
        self.inner.wake.notify_one();
    }

    /// The slow path of [`enqueue`](Self::enqueue): waits for buffer space and for the
    /// topic's metadata, each within `max.block.ms` of the start.
    async fn enqueue_waiting(
        &self,
        record: ProducerRecord,
        size: usize,
        delivery: Delivery,
    ) -> Result<Option<DeliveryFuture>> {
        let inner = &self.inner;
        let started = Instant::now();
        let deadline = started + inner.config.max_block;
        match inner.memory.try_acquire_many(size as u32) {
            Ok(p) => p.forget(),
            Err(_) => {
                inner.stats.note_blocked();
                match tokio::time::timeout_at(deadline, inner.memory.acquire_many(size as u32))
                    .await
                {
                    Ok(Ok(p)) => p.forget(),
                    Ok(Err(_)) => return Err(Error::Closed),
                    Err(_) => {
                        return Err(Error::BlockTimeout {
                            what: "buffer.memory",
                            waited: started.elapsed(),
                        })
                    }
                }
            }
        }
        let r = match self.append(&record, size, delivery) {
            Err(AppendError::UnknownTopic(delivery)) => {
                match self.wait_for_topic(&record.topic, deadline).await {
                    Ok(_) => self.append(&record, size, delivery),
                    Err(e) => Err(AppendError::Failed(e)),
                }
            }
            r => r,
        };
        r.map_err(|e| {
            self.undo(size);
            match e {
                AppendError::Failed(e) => e,
                // Known since `wait_for_topic`: topics are never forgotten.
                AppendError::UnknownTopic(_) => Error::BlockTimeout {
                    what: "topic metadata",
                    waited: started.elapsed(),
                },
            }
        })
    }

    /// Picks the record's partition and appends it (buffer space already taken), under
    /// one lock of the accumulator (the partitioner runs under it too).
    fn append(
        &self,
        record: &ProducerRecord,
        size: usize,
        delivery: Delivery,
    ) -> std::result::Result<Option<DeliveryFuture>, AppendError> {
        let inner = &self.inner;
        let topic: &str = &record.topic;
        let partitioner = &inner.config.partitioner;
        let pick = |count: usize| {
            let p = match record.partition {
                Some(p) => p,
                None => match partitioner.partition(&PartitionContext {
                    topic,
                    key: record.key.as_deref(),
                    value: record.value.as_deref(),
                    partition_count: count as i32,
                }) {
                    Choice::Partition(p) => p,
                    Choice::Sticky => return Ok(None),
                },
            };
            if p < 0 || p as usize >= count {
                return Err(Error::InvalidPartition {
                    topic: topic.to_owned(),
                    partition: p,
                    count,
                });
            }
            Ok(Some(p))
        };
        let parts = RecordParts {
            timestamp: record.timestamp.unwrap_or_else(now_ms),
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &record.headers,
        };
        let client = &inner.client;
        let appended = inner.lock_acc().append(
            topic,
            pick,
            || {
                client
                    .metadata()
                    .partitions(topic)
                    .iter()
                    .filter(|p| p.leader.is_some())
                    .map(|p| p.partition)
                    .collect()
            },
            partitioner.adaptive(),
            parts,
            size,
            Instant::now,
            delivery,
        )?;
        inner.stats.note_sent(size);
        if appended.wake {
            inner.wake.notify_one();
        }
        Ok(appended.future)
    }

    /// Waits for the topic's partitions to be known; returns their count.
    async fn wait_for_topic(&self, topic: &str, deadline: Instant) -> Result<usize> {
        let inner = &self.inner;
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let refreshed =
                tokio::time::timeout_at(deadline, inner.client.refresh_metadata(&[topic])).await;
            let meta = match refreshed {
                Ok(Ok(meta)) => meta,
                Ok(Err(e)) if e.is_retriable() => inner.client.metadata(),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(Error::BlockTimeout {
                        what: "topic metadata",
                        waited: started.elapsed(),
                    })
                }
            };
            if let Some(t) = meta.topic(topic) {
                if !t.partitions.is_empty() {
                    let n = t.partitions.len();
                    inner.lock_acc().ensure_topic(topic, n);
                    return Ok(n);
                }
                if !t.error.is_ok() && !t.error.is_retriable() {
                    return Err(Error::Broker {
                        topic: topic.to_owned(),
                        partition: -1,
                        code: t.error,
                        message: None,
                        outcome: Outcome::NotPersisted,
                    });
                }
            }
            if Instant::now() + delay >= deadline {
                return Err(Error::BlockTimeout {
                    what: "topic metadata",
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Sends everything buffered now without waiting for `linger.ms`, and waits until each of
    /// those records has its outcome (individual failures are reported on their futures).
    pub async fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        let id = inner.lock_acc().begin_flush();
        inner.wake.notify_one();
        loop {
            let notified = inner.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if inner.lock_acc().flushed(id) {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Delivers everything outstanding, waiting at most `timeout`; what has no outcome by
    /// then fails with [`Error::Closed`] (returned here too). Later sends fail.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let inner = &self.inner;
        inner.lock_acc().closing = true;
        inner.wake.notify_one();
        let done = tokio::time::timeout(timeout, async {
            loop {
                let notified = inner.progress.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if inner.lock_acc().is_empty() {
                    return;
                }
                notified.await;
            }
        })
        .await;
        let result = if done.is_ok() {
            Ok(())
        } else {
            inner.closed_hard.store(true, Ordering::Release);
            let f = inner.lock_acc().fail_unsent(&Error::Closed);
            inner.apply(f);
            inner.wake.notify_one();
            Err(Error::Closed)
        };
        inner.client.close();
        result
    }

    /// Counters and gauges of this producer (also exported through the `metrics` facade).
    pub fn stats(&self) -> ProducerStats {
        let (buffered, in_flight) = {
            let acc = self.inner.lock_acc();
            (acc.buffered_bytes, acc.in_flight())
        };
        self.inner.stats.snapshot(buffered, in_flight)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<'a, Fut>(_f: impl FnOnce(&'a Producer, ProducerRecord) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every `send` builds and moves its future: the waiting paths are boxed so that it
    /// stays small (it was 3 KiB with the metadata refresh inline).
    #[test]
    fn the_send_future_stays_small() {
        let size = future_size(Producer::send);
        assert!(size <= 640, "send's future is {size} bytes");
    }
}
