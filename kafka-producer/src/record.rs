//! Records going in, and their outcomes coming back.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::config::DeliveryHandler;
use crate::error::Error;

/// One header of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header key.
    pub key: Cow<'static, str>,
    /// Header value (may be null).
    pub value: Option<Bytes>,
}

/// A record to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: Cow<'static, str>,
    /// The partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// The key (may be null).
    pub key: Option<Bytes>,
    /// The value (may be null: a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<RecordHeader>,
    /// Create time in milliseconds since the epoch; `None` for now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with this value and no key.
    pub fn new(topic: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A record with a null value (a tombstone).
    pub fn tombstone(topic: impl Into<Cow<'static, str>>, key: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) -> Self {
        self.headers.push(RecordHeader {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the create timestamp (ms since the epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset; -1 when unknown (`acks=0`, or a duplicate the broker recognised
    /// without telling the original offset).
    pub offset: i64,
    /// The record's timestamp: its create time, or the broker's append time when the topic
    /// uses `LogAppendTime`.
    pub timestamp: i64,
}

/// How a batch ended.
#[derive(Debug, Clone)]
pub(crate) enum BatchOutcome {
    /// Written at `base_offset` (-1 when unknown); `log_append_time` -1 for CreateTime.
    Written {
        base_offset: i64,
        log_append_time: i64,
    },
    Failed(Error),
}

/// A record's delivery callback ([`Producer::send_with_callback`](crate::Producer::send_with_callback)).
pub(crate) type Callback = Box<dyn FnOnce(Result<RecordMetadata, Error>) + Send + 'static>;

/// A callback with the record's place in its batch.
pub(crate) struct PendingCallback {
    pub(crate) offset_delta: i32,
    pub(crate) timestamp: i64,
    pub(crate) callback: Callback,
}

/// A token-tracked record ([`Producer::send_with_token`](crate::Producer::send_with_token)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingToken {
    pub(crate) offset_delta: i32,
    pub(crate) timestamp: i64,
    pub(crate) token: u64,
}

/// How the records of one batch learn their outcome besides their futures.
#[derive(Default)]
pub(crate) struct Deliveries {
    pub(crate) callbacks: Vec<PendingCallback>,
    pub(crate) tokens: Vec<PendingToken>,
}

#[derive(Default)]
struct SlotState {
    outcome: Option<BatchOutcome>,
    wakers: Vec<Waker>,
    deliveries: Deliveries,
    handler: Option<Arc<dyn DeliveryHandler>>,
}

impl std::fmt::Debug for SlotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotState")
            .field("outcome", &self.outcome)
            .field("wakers", &self.wakers.len())
            .field("callbacks", &self.deliveries.callbacks.len())
            .field("tokens", &self.deliveries.tokens.len())
            .finish()
    }
}

/// The shared outcome of one batch, which every record future of the batch reads: one
/// allocation per batch, none per record.
#[derive(Debug)]
pub(crate) struct BatchSlot {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    state: Mutex<SlotState>,
}

impl BatchSlot {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Arc<Self> {
        Arc::new(BatchSlot {
            topic,
            partition,
            state: Mutex::new(SlotState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands over the callbacks and tokens of the batch's records (in offset order) and the
    /// handler of the tokens, for [`complete`](Self::complete). Once per batch, when it stops
    /// being open.
    pub(crate) fn attach(
        &self,
        deliveries: Deliveries,
        handler: Option<&Arc<dyn DeliveryHandler>>,
    ) {
        if deliveries.callbacks.is_empty() && deliveries.tokens.is_empty() {
            return;
        }
        let mut s = self.lock();
        s.deliveries = deliveries;
        s.handler = handler.cloned();
    }

    /// Sets the outcome (the first one wins), wakes every waiting record and calls every
    /// callback, then the handler for every token, in offset order, outside the slot's lock.
    /// The caller must hold no other lock either: callbacks are the application's code. A
    /// callback or handler that panics is logged; the others still run.
    pub(crate) fn complete(&self, outcome: BatchOutcome) {
        let (wakers, deliveries, handler) = {
            let mut s = self.lock();
            if s.outcome.is_some() {
                return;
            }
            s.outcome = Some(outcome.clone());
            (
                std::mem::take(&mut s.wakers),
                std::mem::take(&mut s.deliveries),
                s.handler.take(),
            )
        };
        for w in wakers {
            w.wake();
        }
        for c in deliveries.callbacks {
            let result = self.record_outcome(c.offset_delta, c.timestamp, &outcome);
            let callback = c.callback;
            self.guard("callback", move || callback(result));
        }
        if let Some(handler) = handler {
            for t in deliveries.tokens {
                let result = self.record_outcome(t.offset_delta, t.timestamp, &outcome);
                self.guard("delivery handler", || handler.delivered(result, t.token));
            }
        }
    }

    /// A record's outcome from its batch's.
    fn record_outcome(
        &self,
        offset_delta: i32,
        timestamp: i64,
        outcome: &BatchOutcome,
    ) -> Result<RecordMetadata, Error> {
        match outcome {
            BatchOutcome::Written {
                base_offset,
                log_append_time,
            } => Ok(RecordMetadata {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: if *base_offset < 0 {
                    -1
                } else {
                    base_offset + i64::from(offset_delta)
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    timestamp
                },
            }),
            BatchOutcome::Failed(e) => Err(e.clone()),
        }
    }

    /// Runs application code, logging a panic instead of unwinding into the sender.
    fn guard(&self, what: &str, f: impl FnOnce()) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            tracing::error!(
                topic = %self.topic,
                partition = self.partition,
                "a {what} panicked"
            );
        }
    }
}

/// Resolves to a record's [`RecordMetadata`] once its batch is acknowledged, or to the error
/// that ended it. Dropping it does not cancel the record.
#[derive(Debug)]
#[must_use = "the record is sent anyway; await this to learn its outcome"]
pub struct DeliveryFuture {
    slot: Arc<BatchSlot>,
    offset_delta: i32,
    timestamp: i64,
}

impl DeliveryFuture {
    pub(crate) fn new(slot: Arc<BatchSlot>, offset_delta: i32, timestamp: i64) -> Self {
        DeliveryFuture {
            slot,
            offset_delta,
            timestamp,
        }
    }

    /// The partition the record went to.
    pub fn partition(&self) -> i32 {
        self.slot.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock();
        match &s.outcome {
            Some(outcome) => {
                let outcome = outcome.clone();
                drop(s);
                Poll::Ready(
                    self.slot
                        .record_outcome(self.offset_delta, self.timestamp, &outcome),
                )
            }
            None => {
                // Only the last waker is compared: scanning all would cost O(records) per
                // poll; a future polled again by another task just adds one more waker.
                if !s.wakers.last().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}
