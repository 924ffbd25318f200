//! The record accumulator: per-partition batches, their sequence numbers and retries.
//!
//! Sans-IO: it takes records, time (`now`) and produce results, and says which batches to
//! send to which broker next ([`Accumulator::drain`]). The sender task moves the bytes.
//!
//! Invariants (see DESIGN.md, "Producer"):
//! - Sequence numbers are per partition and assigned when a batch is sealed, in append order.
//!   A retried batch keeps its sequence (and its bytes), so the broker deduplicates it.
//! - With idempotence, a partition whose batch is being retried sends one batch at a time
//!   until that batch succeeds, so retries never reorder; so does a partition with no batch
//!   acknowledged under the current epoch (a broker without our sequence state there would
//!   take later batches ahead of a refused first one).
//! - A batch that may be in the log is never re-stamped with a new epoch: it is failed as
//!   possibly persisted instead, so a retry can never write a record twice.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_core::client::BackoffConfig;
use kafka_core::codec::compression::{Compression, Compressor};
use kafka_core::codec::records::{
    BatchOptions, Header, RecordBatchBuilder, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use kafka_core::KafkaCode;
use tokio::time::Instant;

use crate::config::DeliveryHandler;
use crate::error::{Error, Outcome};
use crate::partitioner::StickyState;
use crate::record::{
    BatchOutcome, BatchSlot, Callback, Deliveries, DeliveryFuture, PendingCallback, PendingToken,
    RecordHeader,
};

/// Hashes topic names for the accumulator's map, which every record looks up: a
/// multiply-rotate hash (the scheme of rustc's FxHash) costs a few ns where SipHash cost about
/// 5 % of `send`. Topic names come from the application, not from the network, so a hash
/// without a random key is no flooding risk here.
#[derive(Default, Clone, Copy)]
pub(crate) struct TopicHasher(u64);

impl TopicHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for TopicHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The parts of a record that go into its batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordParts<'a> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [RecordHeader],
}

/// How a record's outcome reaches the application.
pub(crate) enum Delivery {
    /// Through the [`DeliveryFuture`] `append` returns.
    Future,
    /// Through a callback, called once with the outcome.
    Callback(Callback),
    /// Through the configured [`DeliveryHandler`], with this token.
    Token(u64),
}

/// Why [`Accumulator::append`] did not take a record.
pub(crate) enum AppendError {
    /// The topic's partitions are not known yet: wait for metadata and try again.
    UnknownTopic(Delivery),
    /// The record cannot be sent.
    Failed(Error),
}

impl std::fmt::Debug for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::UnknownTopic(_) => f.write_str("UnknownTopic"),
            AppendError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl From<Error> for AppendError {
    fn from(e: Error) -> Self {
        AppendError::Failed(e)
    }
}

impl From<kafka_core::CodecError> for AppendError {
    fn from(e: kafka_core::CodecError) -> Self {
        AppendError::Failed(e.into())
    }
}

/// What [`Accumulator::append`] did with a record.
#[derive(Debug)]
pub(crate) struct Appended {
    /// The record's future ([`Delivery::Future`]).
    pub(crate) future: Option<DeliveryFuture>,
    /// The sender should look at the queues now.
    pub(crate) wake: bool,
}

/// Buffers of acknowledged batches kept for reuse (see `Accumulator::spare`).
const SPARE_BUFFERS: usize = 8;

/// Producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

impl ProducerIdentity {
    pub(crate) const NONE: ProducerIdentity = ProducerIdentity {
        id: NO_PRODUCER_ID,
        epoch: NO_PRODUCER_EPOCH,
    };
}

/// What the accumulator needs of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct AccumulatorConfig {
    pub(crate) batch_size: usize,
    pub(crate) linger: Duration,
    pub(crate) max_request_size: usize,
    pub(crate) compression: Compression,
    pub(crate) compression_level: Option<i32>,
    pub(crate) idempotent: bool,
    pub(crate) transactional: bool,
    pub(crate) max_in_flight: usize,
    pub(crate) delivery_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: BackoffConfig,
    /// Where [`Delivery::Token`] outcomes go.
    pub(crate) handler: Option<Handler>,
}

/// The configured [`DeliveryHandler`].
#[derive(Clone)]
pub(crate) struct Handler(pub(crate) Arc<dyn DeliveryHandler>);

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryHandler")
    }
}

/// A sealed batch.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) id: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) bytes: Bytes,
    pub(crate) records: i32,
    pub(crate) base_seq: i32,
    pub(crate) producer: ProducerIdentity,
    pub(crate) slot: Arc<BatchSlot>,
    pub(crate) created: Instant,
    pub(crate) attempts: u32,
    retry_at: Option<Instant>,
    pub(crate) reserved: usize,
    /// An attempt may have reached the log (timed out, connection lost after sending...).
    pub(crate) ambiguous: bool,
    last_error: Option<String>,
}

struct OpenBatch {
    id: u64,
    slot: Arc<BatchSlot>,
    created: Instant,
    reserved: usize,
    expedite: bool,
    /// Callbacks and tokens of the records so far, kept here under the accumulator's lock
    /// (no lock per record) and handed to the slot when the batch stops being open.
    deliveries: Deliveries,
}

impl OpenBatch {
    /// The batch's slot, with the callbacks and tokens of its records attached.
    fn into_slot(self, handler: Option<&Handler>) -> Arc<BatchSlot> {
        self.slot.attach(self.deliveries, handler.map(|h| &h.0));
        self.slot
    }
}

impl std::fmt::Debug for OpenBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBatch")
            .field("id", &self.id)
            .field("created", &self.created)
            .field("reserved", &self.reserved)
            .field("callbacks", &self.deliveries.callbacks.len())
            .field("tokens", &self.deliveries.tokens.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct PartitionQueue {
    builder: Option<RecordBatchBuilder>,
    open: Option<OpenBatch>,
    /// Sealed batches not in flight, in sequence order (retries go back to their place).
    queued: VecDeque<Batch>,
    in_flight: usize,
    next_seq: i32,
    last_acked_seq: i32,
    retrying: bool,
    /// Added to the current transaction (AddPartitionsToTxn answered).
    in_txn: bool,
    /// Callbacks and tokens the last batch had: the next one's starting capacities.
    callbacks_hint: usize,
    tokens_hint: usize,
}

impl PartitionQueue {
    fn new() -> Self {
        PartitionQueue {
            builder: None,
            open: None,
            queued: VecDeque::new(),
            in_flight: 0,
            next_seq: 0,
            last_acked_seq: -1,
            retrying: false,
            in_txn: false,
            callbacks_hint: 0,
            tokens_hint: 0,
        }
    }

    fn queued_bytes(&self) -> usize {
        self.queued.iter().map(|b| b.bytes.len()).sum::<usize>()
            + self
                .builder
                .as_ref()
                .filter(|_| self.open.is_some())
                .map_or(0, |b| b.estimated_size())
    }
}

#[derive(Debug)]
struct TopicQueues {
    name: Arc<str>,
    partitions: Vec<PartitionQueue>,
    sticky: StickyState,
}

/// One produce request's worth of batches for one broker.
#[derive(Debug)]
pub(crate) struct ProduceJob {
    pub(crate) node: i32,
    pub(crate) batches: Vec<Batch>,
}

/// The answer for one batch of a job.
#[derive(Debug, Clone)]
pub(crate) enum BatchResult {
    Written {
        base_offset: i64,
        log_append_time: i64,
    },
    /// The broker's code for this partition.
    Code {
        code: KafkaCode,
        message: Option<String>,
    },
    /// The request failed as a whole; `sent` when it may have reached the broker.
    Transport { error: String, sent: bool },
}

/// What a completion asks of the sender.
#[derive(Default)]
pub(crate) struct Followups {
    /// Bytes of finished batches to return to `buffer.memory`.
    pub(crate) released: usize,
    /// Metadata is stale (leader moved, unknown partition).
    pub(crate) refresh_metadata: bool,
    /// The producer epoch must be bumped (sequence state lost or a gap made).
    pub(crate) bump_epoch: bool,
    /// A fatal error (fencing).
    pub(crate) fatal: Option<Error>,
    /// The transaction must be aborted.
    pub(crate) abortable: Option<Error>,
    /// Batches that were retried.
    pub(crate) retries: u64,
    /// Batches that failed.
    pub(crate) failed: u64,
    /// Records acknowledged.
    pub(crate) records_acked: u64,
    /// Bytes acknowledged.
    pub(crate) bytes_acked: u64,
    /// Batches with their outcome, resolved by [`resolve`](Self::resolve) once the counters
    /// and buffer space are updated (so a caller woken by its record sees them) and outside
    /// the accumulator's lock.
    /// Each with its batch id: the accumulator still counts the batch as outstanding (for
    /// `flushed` and `is_empty`) until [`Accumulator::settle`] is given the ids `resolve`
    /// leaves in `settled`, so that `flush` and `close` return only once every delivery
    /// callback and handler of the batch has run (as Java's `flush` does).
    pub(crate) resolved: Vec<(u64, Arc<BatchSlot>, BatchOutcome)>,
    /// Ids of the batches `resolve` delivered.
    pub(crate) settled: Vec<u64>,
}

impl Followups {
    /// Wakes the records of every finished batch and runs their callbacks and handler calls.
    pub(crate) fn resolve(&mut self) {
        for (id, slot, outcome) in self.resolved.drain(..) {
            slot.complete(outcome);
            self.settled.push(id);
        }
    }
}

/// Leader lookups the accumulator needs.
pub(crate) trait Leaders {
    fn leader(&self, topic: &str, partition: i32) -> Option<i32>;
}

pub(crate) struct Accumulator {
    cfg: AccumulatorConfig,
    topics: HashMap<Arc<str>, TopicQueues, BuildHasherDefault<TopicHasher>>,
    compressor: Compressor,
    /// Open batches whose sealing failed, failed by the next `expire` outside the lock.
    unsealable: Vec<(OpenBatch, Error)>,
    /// Buffers of acknowledged batches, for batches whose builder's own buffer is still in
    /// flight: no allocation and no zeroing of a fresh buffer per batch.
    spare: Vec<BytesMut>,
    pub(crate) producer: ProducerIdentity,
    in_flight_per_node: HashMap<i32, usize>,
    /// Where `drain` starts: one partition (and topic) further on each time.
    drain_turn: usize,
    next_batch_id: u64,
    outstanding: BTreeSet<u64>,
    flush_until: u64,
    pub(crate) closing: bool,
    /// No new batch is sent until the epoch bump is done.
    pub(crate) bump_pending: bool,
    rng: u64,
    pub(crate) buffered_bytes: usize,
}

fn header_slice<'a>(
    headers: &'a [RecordHeader],
    scratch: &'a mut [Header<'a>; 8],
) -> Result<&'a [Header<'a>], Vec<Header<'a>>> {
    if headers.len() <= scratch.len() {
        for (s, h) in scratch.iter_mut().zip(headers) {
            *s = Header {
                key: h.key.as_bytes(),
                value: h.value.as_deref(),
            };
        }
        Ok(&scratch[..headers.len()])
    } else {
        Err(headers
            .iter()
            .map(|h| Header {
                key: h.key.as_bytes(),
                value: h.value.as_deref(),
            })
            .collect())
    }
}

/// Writes producer id, epoch and base sequence into a sealed batch and recomputes its CRC.
pub(crate) fn restamp(batch: &Bytes, producer: ProducerIdentity, base_seq: i32) -> Bytes {
    const PRODUCER_ID_OFFSET: usize = 43;
    const CRC_OFFSET: usize = 17;
    const ATTRIBUTES_OFFSET: usize = 21;
    let mut b = BytesMut::from(&batch[..]);
    b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer.id.to_be_bytes());
    b[PRODUCER_ID_OFFSET + 8..PRODUCER_ID_OFFSET + 10]
        .copy_from_slice(&producer.epoch.to_be_bytes());
    b[PRODUCER_ID_OFFSET + 10..PRODUCER_ID_OFFSET + 14].copy_from_slice(&base_seq.to_be_bytes());
    let crc = kafka_core::codec::crc::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

fn seq_add(seq: i32, n: i32) -> i32 {
    // Sequences wrap from i32::MAX to 0.
    ((i64::from(seq) + i64::from(n)) % (i64::from(i32::MAX) + 1)) as i32
}

impl Accumulator {
    pub(crate) fn new(cfg: AccumulatorConfig, compressor: Compressor, seed: u64) -> Self {
        Accumulator {
            cfg,
            topics: HashMap::default(),
            drain_turn: 0,
            compressor,
            unsealable: Vec::new(),
            spare: Vec::new(),
            producer: ProducerIdentity::NONE,
            in_flight_per_node: HashMap::new(),
            next_batch_id: 1,
            outstanding: BTreeSet::new(),
            flush_until: 0,
            closing: false,
            bump_pending: false,
            rng: seed | 1,
            buffered_bytes: 0,
        }
    }

    /// Makes sure the topic's queues cover `partition_count` partitions.
    pub(crate) fn ensure_topic(&mut self, topic: &str, partition_count: usize) {
        if let Some(t) = self.topics.get_mut(topic) {
            while t.partitions.len() < partition_count {
                t.partitions.push(PartitionQueue::new());
            }
            return;
        }
        let name: Arc<str> = Arc::from(topic);
        self.topics.insert(
            name.clone(),
            TopicQueues {
                name,
                partitions: (0..partition_count)
                    .map(|_| PartitionQueue::new())
                    .collect(),
                sticky: StickyState::default(),
            },
        );
    }

    /// Grows topics whose partition count went up (`count_of` reads current metadata), so
    /// keyed records follow the new count as a Java producer's would.
    pub(crate) fn grow_topics(&mut self, count_of: impl Fn(&str) -> usize) {
        for t in self.topics.values_mut() {
            let n = count_of(&t.name);
            while t.partitions.len() < n {
                t.partitions.push(PartitionQueue::new());
            }
        }
    }

    /// Known partition count of a topic (0 if unknown).
    #[cfg(test)]
    pub(crate) fn partition_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |t| t.partitions.len())
    }

    /// Appends a record to its partition's open batch. `pick` gets the topic's partition
    /// count and says the partition, or `None` for the uniform sticky choice (KIP-794;
    /// `available` lists the partitions with a leader, asked only when a new partition is
    /// drawn). A topic not known yet ([`ensure_topic`](Self::ensure_topic)) hands the
    /// delivery back; a closing producer takes nothing. Returns how
    /// the record's outcome will be delivered (its future, unless a callback was given), its
    /// partition, and whether the sender should look at the queues now (a new batch
    /// started, or one filled up). One lookup of the topic, and `now` is read only when a
    /// batch starts: this is the per-record path.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append(
        &mut self,
        topic: &str,
        pick: impl FnOnce(usize) -> Result<Option<i32>, Error>,
        available: impl FnOnce() -> Vec<i32>,
        adaptive: bool,
        record: RecordParts<'_>,
        reserved: usize,
        now: impl FnOnce() -> Instant,
        delivery: Delivery,
    ) -> Result<Appended, AppendError> {
        if self.closing {
            return Err(AppendError::Failed(Error::Closed));
        }
        let RecordParts {
            timestamp,
            key,
            value,
            headers,
        } = record;
        let mut scratch = [Header {
            key: &[],
            value: None,
        }; 8];
        let owned;
        let hs: &[Header<'_>] = match header_slice(headers, &mut scratch) {
            Ok(s) => s,
            Err(v) => {
                owned = v;
                &owned
            }
        };
        let cfg = &self.cfg;
        let producer = self.producer;
        let Some(t) = self.topics.get_mut(topic) else {
            return Err(AppendError::UnknownTopic(delivery));
        };
        let partition = match pick(t.partitions.len())? {
            Some(p) => p,
            None => {
                let parts = &t.partitions;
                t.sticky.choose(
                    reserved,
                    cfg.batch_size,
                    parts.len() as i32,
                    available,
                    adaptive,
                    |p| {
                        parts
                            .get(p as usize)
                            .map_or(0, PartitionQueue::queued_bytes)
                    },
                    &mut self.rng,
                )
            }
        };
        let count = t.partitions.len();
        let pq =
            t.partitions
                .get_mut(partition as usize)
                .ok_or_else(|| Error::InvalidPartition {
                    topic: topic.to_owned(),
                    partition,
                    count,
                })?;
        let mut wake = false;
        // A record that does not fit the open batch closes it.
        if let (Some(_), Some(b)) = (&pq.open, &pq.builder) {
            if !b.is_empty() && b.estimated_size_with(timestamp, key, value, hs) > cfg.batch_size {
                Self::seal_open(
                    cfg,
                    &mut self.compressor,
                    producer,
                    pq,
                    &mut self.unsealable,
                );
                wake = true;
            }
        }
        if pq.open.is_none() {
            let opts = BatchOptions {
                compression: cfg.compression,
                compression_level: cfg.compression_level,
                producer_id: producer.id,
                producer_epoch: producer.epoch,
                base_sequence: if cfg.idempotent {
                    pq.next_seq
                } else {
                    NO_SEQUENCE
                },
                transactional: cfg.transactional,
                ..BatchOptions::default()
            };
            match &mut pq.builder {
                Some(b) => {
                    b.reset(opts);
                    // The last batch is likely still in flight: write into a sent one's buffer.
                    if let Some(buf) = self.spare.pop() {
                        if let Some(back) = b.offer_buffer(buf) {
                            self.spare.push(back);
                        }
                    }
                }
                None => {
                    pq.builder = Some(RecordBatchBuilder::with_buffer(
                        opts,
                        BytesMut::with_capacity(cfg.batch_size.min(cfg.max_request_size) + 128),
                    ))
                }
            }
            let id = self.next_batch_id;
            self.next_batch_id += 1;
            self.outstanding.insert(id);
            pq.open = Some(OpenBatch {
                id,
                slot: BatchSlot::new(t.name.clone(), partition),
                created: now(),
                reserved: 0,
                expedite: false,
                deliveries: Deliveries {
                    callbacks: Vec::with_capacity(pq.callbacks_hint),
                    tokens: Vec::with_capacity(pq.tokens_hint),
                },
            });
            wake = true;
        }
        let builder = pq
            .builder
            .as_mut()
            .expect("builder exists with an open batch");
        let open = pq.open.as_mut().expect("open batch");
        let offset_delta = builder.append(timestamp, key, value, hs)?;
        open.reserved += reserved;
        self.buffered_bytes += reserved;
        let future = match delivery {
            Delivery::Future => Some(DeliveryFuture::new(
                open.slot.clone(),
                offset_delta,
                timestamp,
            )),
            Delivery::Callback(callback) => {
                open.deliveries.callbacks.push(PendingCallback {
                    offset_delta,
                    timestamp,
                    callback,
                });
                None
            }
            Delivery::Token(token) => {
                open.deliveries.tokens.push(PendingToken {
                    offset_delta,
                    timestamp,
                    token,
                });
                None
            }
        };
        if builder.estimated_size() >= cfg.batch_size {
            wake = true;
        }
        Ok(Appended { future, wake })
    }

    /// Marks the partition's open batch to be sent without waiting for `linger.ms`.
    pub(crate) fn expedite(&mut self, topic: &str, partition: i32) {
        if let Some(open) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
            .and_then(|p| p.open.as_mut())
        {
            open.expedite = true;
        }
    }

    /// Seals the partition's open batch into its queue. A batch that cannot be sealed
    /// (compression failed) goes to `unsealable`, to be failed outside the lock.
    fn seal_open(
        cfg: &AccumulatorConfig,
        compressor: &mut Compressor,
        producer: ProducerIdentity,
        pq: &mut PartitionQueue,
        unsealable: &mut Vec<(OpenBatch, Error)>,
    ) {
        let Some(open) = pq.open.take() else {
            return;
        };
        let builder = pq
            .builder
            .as_mut()
            .expect("builder exists with an open batch");
        let records = builder.record_count() as i32;
        let stamped = (
            builder.options().producer_id,
            builder.options().producer_epoch,
            builder.options().base_sequence,
        );
        let mut bytes = match builder.seal(compressor) {
            Ok(b) => b,
            Err(e) => {
                let opts = *builder.options();
                builder.reset(opts);
                unsealable.push((open, Error::from(e)));
                return;
            }
        };
        let base_seq = if cfg.idempotent {
            pq.next_seq
        } else {
            NO_SEQUENCE
        };
        if stamped != (producer.id, producer.epoch, base_seq) {
            bytes = restamp(&bytes, producer, base_seq);
        }
        if cfg.idempotent {
            pq.next_seq = seq_add(pq.next_seq, records);
        }
        pq.callbacks_hint = open.deliveries.callbacks.len();
        pq.tokens_hint = open.deliveries.tokens.len();
        let (id, created, reserved) = (open.id, open.created, open.reserved);
        let slot = open.into_slot(cfg.handler.as_ref());
        pq.queued.push_back(Batch {
            id,
            topic: slot.topic.clone(),
            partition: slot.partition,
            bytes,
            records,
            base_seq,
            producer,
            slot,
            created,
            attempts: 0,
            retry_at: None,
            reserved,
            ambiguous: false,
            last_error: None,
        });
    }

    /// Asks that every batch existing now be sent without waiting for `linger.ms`; returns
    /// the id that [`flushed`](Self::flushed) compares with.
    pub(crate) fn begin_flush(&mut self) -> u64 {
        let last = self.next_batch_id - 1;
        self.flush_until = self.flush_until.max(last);
        last
    }

    /// Forgets batches whose outcomes have been delivered (see `Followups::settled`).
    pub(crate) fn settle(&mut self, ids: &[u64]) {
        for id in ids {
            self.outstanding.remove(id);
        }
    }

    /// Whether every batch up to `id` has its outcome, delivered.
    pub(crate) fn flushed(&self, id: u64) -> bool {
        self.outstanding.first().is_none_or(|&first| first > id)
    }

    /// Whether nothing is buffered or in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// Total batches in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight_per_node.values().sum()
    }

    /// Partitions with data waiting that are not yet part of the transaction.
    pub(crate) fn partitions_to_add(&self) -> Vec<(Arc<str>, i32)> {
        let mut out = Vec::new();
        for t in self.topics.values() {
            for (i, pq) in t.partitions.iter().enumerate() {
                if !pq.in_txn && (pq.open.is_some() || !pq.queued.is_empty()) {
                    out.push((t.name.clone(), i as i32));
                }
            }
        }
        out
    }

    /// Marks partitions as added to the transaction.
    pub(crate) fn mark_added(&mut self, parts: &[(Arc<str>, i32)]) {
        for (topic, p) in parts {
            if let Some(pq) = self
                .topics
                .get_mut(&**topic)
                .and_then(|t| t.partitions.get_mut(*p as usize))
            {
                pq.in_txn = true;
            }
        }
    }

    /// After a commit or abort: no partition is in a transaction.
    pub(crate) fn end_transaction(&mut self) {
        for t in self.topics.values_mut() {
            for pq in &mut t.partitions {
                pq.in_txn = false;
            }
        }
    }

    /// Fails the batches that could not be sealed (their records were never sent).
    fn fail_unsealable(&mut self, f: &mut Followups) {
        for (open, e) in std::mem::take(&mut self.unsealable) {
            self.buffered_bytes = self.buffered_bytes.saturating_sub(open.reserved);
            f.released += open.reserved;
            f.failed += 1;
            if self.cfg.transactional {
                f.abortable = Some(e.clone());
            }
            let id = open.id;
            let slot = open.into_slot(self.cfg.handler.as_ref());
            f.resolved.push((id, slot, BatchOutcome::Failed(e)));
        }
    }

    fn fail_batch(&mut self, batch: Batch, error: Error, f: &mut Followups) {
        f.released += batch.reserved;
        f.failed += 1;
        self.buffered_bytes = self.buffered_bytes.saturating_sub(batch.reserved);
        f.resolved
            .push((batch.id, batch.slot, BatchOutcome::Failed(error)));
    }

    /// Fails everything not yet sent (open and queued batches) with `error` (abort, close,
    /// fatal errors). In-flight batches finish on their own.
    pub(crate) fn fail_unsent(&mut self, error: &Error) -> Followups {
        let mut f = Followups::default();
        self.fail_unsealable(&mut f);
        let mut failed = Vec::new();
        for t in self.topics.values_mut() {
            for pq in &mut t.partitions {
                if let Some(open) = pq.open.take() {
                    if let Some(b) = pq.builder.as_mut() {
                        let opts = *b.options();
                        b.reset(opts);
                    }
                    let (id, reserved) = (open.id, open.reserved);
                    let slot = open.into_slot(self.cfg.handler.as_ref());
                    failed.push((id, reserved, slot, error.clone()));
                }
                for b in pq.queued.drain(..) {
                    let e = if b.ambiguous {
                        // An earlier attempt may be in the log: say so rather than "not sent".
                        Error::DeliveryTimeout {
                            topic: b.topic.to_string(),
                            partition: b.partition,
                            timeout: Duration::ZERO,
                            outcome: Outcome::PossiblyPersisted,
                            last_error: Some(error.to_string()),
                        }
                    } else {
                        error.clone()
                    };
                    failed.push((b.id, b.reserved, b.slot, e));
                }
                // Sequences of unsent batches are given back.
                pq.next_seq = seq_add(pq.last_acked_seq, 1).max(0);
                pq.retrying = false;
            }
        }
        for (id, reserved, slot, e) in failed {
            f.released += reserved;
            f.failed += 1;
            self.buffered_bytes = self.buffered_bytes.saturating_sub(reserved);
            f.resolved.push((id, slot, BatchOutcome::Failed(e)));
        }
        f
    }

    /// Fails batches whose `delivery.timeout.ms` has passed (not those in flight: their
    /// request ends first). Returns the earliest future expiry among the rest.
    pub(crate) fn expire(&mut self, now: Instant, f: &mut Followups) -> Option<Instant> {
        let timeout = self.cfg.delivery_timeout;
        let idempotent = self.cfg.idempotent;
        let transactional = self.cfg.transactional;
        self.fail_unsealable(f);
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        for t in self.topics.values_mut() {
            for pq in &mut t.partitions {
                // Queued batches, oldest first.
                let mut keep = VecDeque::with_capacity(pq.queued.len());
                let mut gap = false;
                for b in pq.queued.drain(..) {
                    if b.created + timeout <= now {
                        gap = true;
                        if b.ambiguous && idempotent {
                            f.bump_epoch = true;
                        }
                        expired.push(b);
                    } else {
                        next =
                            Some(next.map_or(b.created + timeout, |n| n.min(b.created + timeout)));
                        keep.push_back(b);
                    }
                }
                pq.queued = keep;
                if let Some(open) = &pq.open {
                    if open.created + timeout <= now {
                        let open = pq.open.take().expect("checked");
                        if let Some(b) = pq.builder.as_mut() {
                            let opts = *b.options();
                            b.reset(opts);
                        }
                        self.buffered_bytes = self.buffered_bytes.saturating_sub(open.reserved);
                        f.released += open.reserved;
                        f.failed += 1;
                        let e = Error::DeliveryTimeout {
                            topic: open.slot.topic.to_string(),
                            partition: open.slot.partition,
                            timeout,
                            outcome: Outcome::NotPersisted,
                            last_error: None,
                        };
                        if transactional {
                            f.abortable = Some(e.clone());
                        }
                        let id = open.id;
                        let slot = open.into_slot(self.cfg.handler.as_ref());
                        f.resolved.push((id, slot, BatchOutcome::Failed(e)));
                    } else {
                        let at = open.created + timeout;
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                if gap && idempotent && !f.bump_epoch {
                    // Unsent batches left a hole: renumber what follows (none of it was sent,
                    // since batches go out in order).
                    let mut seq = seq_add(pq.last_acked_seq, 1).max(0);
                    if pq.in_flight == 0 {
                        for b in &mut pq.queued {
                            if b.base_seq != seq {
                                b.bytes = restamp(&b.bytes, b.producer, seq);
                                b.base_seq = seq;
                            }
                            seq = seq_add(seq, b.records);
                        }
                        pq.next_seq = seq;
                    } else {
                        f.bump_epoch = true;
                    }
                }
            }
        }
        for b in expired {
            let e = Error::DeliveryTimeout {
                topic: b.topic.to_string(),
                partition: b.partition,
                timeout,
                outcome: if b.ambiguous {
                    Outcome::PossiblyPersisted
                } else {
                    Outcome::NotPersisted
                },
                last_error: b.last_error.clone(),
            };
            if transactional {
                f.abortable = Some(e.clone());
            }
            self.fail_batch(b, e, f);
        }
        next
    }

    /// Chooses what to send now: at most one batch per partition per request, requests up to
    /// `max.request.size`, at most `max.in.flight` requests per broker. Also returns when to
    /// look again (linger and backoff deadlines) and whether a leader is unknown.
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        leaders: &dyn Leaders,
    ) -> (Vec<ProduceJob>, Option<Instant>, bool) {
        let mut next_wake: Option<Instant> = None;
        let mut wake_at = |at: Instant| {
            next_wake = Some(next_wake.map_or(at, |n: Instant| n.min(at)));
        };
        let mut unknown_leader = false;
        let mut jobs: HashMap<i32, (Vec<Batch>, usize)> = HashMap::new();
        if self.bump_pending || self.producer.id == NO_PRODUCER_ID && self.cfg.idempotent {
            return (Vec::new(), None, false);
        }
        let cfg = self.cfg.clone();
        let producer = self.producer;
        let flush_until = self.flush_until;
        let closing = self.closing;
        // Each drain starts one partition (and one topic) further on, as the Java client's
        // drain index does: when a request holds only a few batches (large batches against
        // `max.request.size`) and every slot goes to the first partitions that are ready,
        // fixed order would starve the others for as long as the first ones keep filling.
        let turn = self.drain_turn;
        self.drain_turn = self.drain_turn.wrapping_add(1);
        let mut topics: Vec<&mut TopicQueues> = self.topics.values_mut().collect();
        if !topics.is_empty() {
            let start = turn % topics.len();
            topics.rotate_left(start);
        }
        for t in topics {
            let count = t.partitions.len();
            for i in 0..count {
                let p = (i + turn) % count;
                let pq = &mut t.partitions[p];
                if pq.open.is_none() && pq.queued.is_empty() {
                    continue;
                }
                if cfg.transactional && !pq.in_txn {
                    continue;
                }
                let Some(node) = leaders.leader(&t.name, p as i32) else {
                    unknown_leader = true;
                    continue;
                };
                if pq.retrying && pq.in_flight > 0 {
                    continue;
                }
                // Until the broker has acknowledged a batch of this partition under the current
                // epoch, it holds no sequence state for us there, and a broker without state
                // takes *any* sequence: were the first batch refused (the partition not yet
                // loaded after a topic is created, a leader move) while the next ones were in
                // flight, those would be written ahead of it and it could never follow them.
                // So the first batch goes alone; the rest follow its acknowledgement.
                if cfg.idempotent && pq.last_acked_seq < 0 && pq.in_flight > 0 {
                    continue;
                }
                if cfg.idempotent && pq.in_flight >= cfg.max_in_flight {
                    continue;
                }
                let node_in_flight = self.in_flight_per_node.get(&node).copied().unwrap_or(0);
                let job = jobs.entry(node).or_insert_with(|| (Vec::new(), 0));
                if node_in_flight >= cfg.max_in_flight {
                    continue;
                }
                // Something sealed and due, or the open batch when it is ready.
                let front_due = match pq.queued.front() {
                    Some(b) => match b.retry_at {
                        Some(at) if at > now => {
                            wake_at(at);
                            false
                        }
                        _ => true,
                    },
                    None => false,
                };
                if !front_due && pq.queued.is_empty() {
                    if let (Some(open), Some(b)) = (&pq.open, &pq.builder) {
                        let ready = open.expedite
                            || closing
                            || open.id <= flush_until
                            || b.estimated_size() >= cfg.batch_size
                            || open.created + cfg.linger <= now;
                        if !ready {
                            wake_at(open.created + cfg.linger);
                            continue;
                        }
                        Self::seal_open(
                            &cfg,
                            &mut self.compressor,
                            producer,
                            pq,
                            &mut self.unsealable,
                        );
                    }
                } else if !front_due {
                    continue;
                }
                let Some(front) = pq.queued.front() else {
                    continue;
                };
                if !job.0.is_empty() && job.1 + front.bytes.len() > cfg.max_request_size {
                    continue;
                }
                let mut batch = pq.queued.pop_front().expect("front exists");
                batch.attempts += 1;
                batch.retry_at = None;
                job.1 += batch.bytes.len();
                job.0.push(batch);
                pq.in_flight += 1;
            }
        }
        let mut out = Vec::new();
        for (node, (batches, _)) in jobs {
            if batches.is_empty() {
                continue;
            }
            *self.in_flight_per_node.entry(node).or_insert(0) += 1;
            out.push(ProduceJob { node, batches });
        }
        if !self.unsealable.is_empty() {
            // Failed by the next `expire`, outside the lock.
            next_wake = Some(now);
        }
        (out, next_wake, unknown_leader)
    }

    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionQueue> {
        self.topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
    }

    /// Puts a batch back for another attempt, in sequence order.
    fn requeue(&mut self, mut batch: Batch, now: Instant, error: String) {
        let backoff = &self.cfg.retry_backoff;
        let unit = (self.rng % 1000) as f64 / 1000.0;
        self.rng = self.rng.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
        batch.retry_at = Some(now + backoff.delay(batch.attempts.saturating_sub(1), unit));
        batch.last_error = Some(error);
        let idempotent = self.cfg.idempotent;
        let Some(pq) = self.partition_mut(&batch.topic, batch.partition) else {
            return;
        };
        pq.retrying = idempotent;
        let at = if idempotent {
            pq.queued
                .iter()
                .position(|b| seq_before(batch.base_seq, b.base_seq))
                .unwrap_or(pq.queued.len())
        } else {
            0
        };
        pq.queued.insert(at, batch);
    }

    /// Takes the results of a produce request.
    pub(crate) fn complete(
        &mut self,
        job_node: i32,
        results: Vec<(Batch, BatchResult)>,
        now: Instant,
    ) -> Followups {
        let mut f = Followups::default();
        if let Some(n) = self.in_flight_per_node.get_mut(&job_node) {
            *n = n.saturating_sub(1);
        }
        let idempotent = self.cfg.idempotent;
        let transactional = self.cfg.transactional;
        let mut written = Vec::new();
        for (mut batch, result) in results {
            let (topic, partition) = (batch.topic.clone(), batch.partition);
            let Some(pq) = self.partition_mut(&topic, partition) else {
                continue;
            };
            pq.in_flight = pq.in_flight.saturating_sub(1);
            let last_acked = pq.last_acked_seq;
            match result {
                BatchResult::Written {
                    base_offset,
                    log_append_time,
                } => {
                    if idempotent && batch.base_seq >= 0 {
                        pq.last_acked_seq = seq_add(batch.base_seq, batch.records - 1);
                    }
                    pq.retrying = false;
                    f.released += batch.reserved;
                    f.records_acked += batch.records as u64;
                    f.bytes_acked += batch.bytes.len() as u64;
                    self.buffered_bytes = self.buffered_bytes.saturating_sub(batch.reserved);
                    written.push(batch.bytes);
                    f.resolved.push((
                        batch.id,
                        batch.slot,
                        BatchOutcome::Written {
                            base_offset,
                            log_append_time,
                        },
                    ));
                }
                BatchResult::Transport { error, sent } => {
                    batch.ambiguous |= sent;
                    f.refresh_metadata = true;
                    self.retry_or_fail(batch, now, error, None, &mut f);
                }
                BatchResult::Code { code, message } => {
                    let text = match &message {
                        Some(m) => format!("{code:?}: {m}"),
                        None => format!("{code:?}"),
                    };
                    match code {
                        KafkaCode::DuplicateSequenceNumber => {
                            // Already written by an earlier attempt; the offset is not known.
                            if idempotent {
                                pq.last_acked_seq = seq_add(batch.base_seq, batch.records - 1);
                            }
                            pq.retrying = false;
                            f.released += batch.reserved;
                            f.records_acked += batch.records as u64;
                            self.buffered_bytes =
                                self.buffered_bytes.saturating_sub(batch.reserved);
                            f.resolved.push((
                                batch.id,
                                batch.slot,
                                BatchOutcome::Written {
                                    base_offset: -1,
                                    log_append_time: -1,
                                },
                            ));
                        }
                        KafkaCode::OutOfOrderSequenceNumber
                            if seq_before(seq_add(last_acked, 1), batch.base_seq) =>
                        {
                            // An earlier batch of this partition is being retried: this one
                            // was refused only because it came too early.
                            self.retry_or_fail(batch, now, text, None, &mut f);
                        }
                        KafkaCode::OutOfOrderSequenceNumber | KafkaCode::UnknownProducerId => {
                            // The broker lost our sequence state, or (the batch's sequence is
                            // behind the last acknowledged one) took later batches without
                            // state and can never take this one under this epoch. Nothing of
                            // this batch was written. Fail it only if it ran out of time, else
                            // retry it with a bumped epoch.
                            if transactional {
                                let e = self.broker_error(&batch, code, message);
                                f.abortable = Some(e.clone());
                                self.fail_batch(batch, e, &mut f);
                            } else {
                                f.bump_epoch = true;
                                self.retry_or_fail(batch, now, text, None, &mut f);
                            }
                        }
                        KafkaCode::InvalidProducerEpoch | KafkaCode::ProducerFenced
                            if transactional =>
                        {
                            let e = Error::Fenced { code };
                            f.fatal = Some(e.clone());
                            self.fail_batch(batch, e, &mut f);
                        }
                        KafkaCode::InvalidProducerEpoch => {
                            f.bump_epoch = true;
                            self.retry_or_fail(batch, now, text, None, &mut f);
                        }
                        KafkaCode::TransactionAbortable | KafkaCode::InvalidTxnState => {
                            let e = self.broker_error(&batch, code, message);
                            f.abortable = Some(e.clone());
                            self.fail_batch(batch, e, &mut f);
                        }
                        code if code.is_retriable() => {
                            if code.needs_metadata_refresh() {
                                f.refresh_metadata = true;
                            }
                            // A replication timeout or too few replicas *after* append leave
                            // the batch possibly written.
                            if matches!(
                                code,
                                KafkaCode::RequestTimedOut
                                    | KafkaCode::NotEnoughReplicasAfterAppend
                                    | KafkaCode::NetworkException
                            ) {
                                batch.ambiguous = true;
                            }
                            self.retry_or_fail(batch, now, text, Some(code), &mut f);
                        }
                        _ => {
                            let e = self.broker_error(&batch, code, message);
                            if idempotent {
                                // Later batches of the partition now have a sequence gap.
                                f.bump_epoch = true;
                            }
                            if transactional {
                                f.abortable = Some(e.clone());
                            }
                            self.fail_batch(batch, e, &mut f);
                        }
                    }
                }
            }
        }
        for bytes in written {
            if self.spare.len() >= SPARE_BUFFERS {
                break;
            }
            // Unique once the request's frame is gone (the builder kept no handle either).
            if let Ok(buf) = bytes.try_into_mut() {
                self.spare.push(buf);
            }
        }
        f
    }

    fn broker_error(&self, batch: &Batch, code: KafkaCode, message: Option<String>) -> Error {
        Error::Broker {
            topic: batch.topic.to_string(),
            partition: batch.partition,
            code,
            message,
            outcome: if batch.ambiguous {
                Outcome::PossiblyPersisted
            } else {
                Outcome::NotPersisted
            },
        }
    }

    fn retry_or_fail(
        &mut self,
        batch: Batch,
        now: Instant,
        error: String,
        code: Option<KafkaCode>,
        f: &mut Followups,
    ) {
        let timed_out = batch.created + self.cfg.delivery_timeout <= now;
        let out_of_retries = batch.attempts > self.cfg.retries;
        if !timed_out && !out_of_retries {
            f.retries += 1;
            self.requeue(batch, now, error);
            return;
        }
        let outcome = if batch.ambiguous {
            Outcome::PossiblyPersisted
        } else {
            Outcome::NotPersisted
        };
        if self.cfg.idempotent {
            f.bump_epoch = true;
        }
        let e = match (timed_out, code) {
            (false, Some(code)) => Error::Broker {
                topic: batch.topic.to_string(),
                partition: batch.partition,
                code,
                message: Some(error),
                outcome,
            },
            _ => Error::DeliveryTimeout {
                topic: batch.topic.to_string(),
                partition: batch.partition,
                timeout: self.cfg.delivery_timeout,
                outcome,
                last_error: Some(error),
            },
        };
        if self.cfg.transactional {
            f.abortable = Some(e.clone());
        }
        self.fail_batch(batch, e, f);
    }

    /// Applies a new producer id/epoch after a bump: batches that may be in the log are
    /// failed as possibly persisted; the rest get the new identity and sequences from 0.
    pub(crate) fn apply_new_identity(&mut self, producer: ProducerIdentity) -> Followups {
        let mut f = Followups::default();
        self.producer = producer;
        let mut to_fail = Vec::new();
        for t in self.topics.values_mut() {
            for pq in &mut t.partitions {
                debug_assert_eq!(pq.in_flight, 0);
                let mut seq = 0;
                let mut keep = VecDeque::with_capacity(pq.queued.len());
                for mut b in pq.queued.drain(..) {
                    if b.ambiguous {
                        to_fail.push(b);
                        continue;
                    }
                    b.bytes = restamp(&b.bytes, producer, seq);
                    b.base_seq = seq;
                    b.producer = producer;
                    seq = seq_add(seq, b.records);
                    keep.push_back(b);
                }
                pq.queued = keep;
                pq.next_seq = seq;
                pq.last_acked_seq = -1;
                pq.retrying = false;
            }
        }
        for b in to_fail {
            let e = Error::DeliveryTimeout {
                topic: b.topic.to_string(),
                partition: b.partition,
                timeout: self.cfg.delivery_timeout,
                outcome: Outcome::PossiblyPersisted,
                last_error: Some(format!(
                    "producer epoch bumped while this batch's earlier attempt was unresolved ({})",
                    b.last_error.as_deref().unwrap_or("unknown")
                )),
            };
            self.fail_batch(b, e, &mut f);
        }
        self.bump_pending = false;
        f
    }
}

/// `a` comes before `b` in sequence order (sequences wrap at i32::MAX).
fn seq_before(a: i32, b: i32) -> bool {
    let diff = (i64::from(b) - i64::from(a)).rem_euclid(i64::from(i32::MAX) + 1);
    diff != 0 && diff < i64::from(i32::MAX) / 2
}

#[cfg(test)]
mod tests;
