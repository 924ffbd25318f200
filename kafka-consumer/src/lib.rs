//! `kafka-consumer`: a Kafka consumer built on `kafka-core`.
//!
//! * [`Consumer`]: manual assignment ([`Consumer::assign`]) or group subscription
//!   ([`Consumer::subscribe`], [`Consumer::subscribe_pattern`]); records through
//!   [`Consumer::recv`], [`Consumer::poll`], a [`futures_core::Stream`]
//!   ([`Consumer::stream`]) or, fastest, whole batches of zero-copy views
//!   ([`Consumer::poll_batches`]).
//! * Fetching ([`session`]): the highest Fetch version both sides speak, incremental fetch
//!   sessions (KIP-227), one fetch in flight to every broker at once, follower fetching
//!   (KIP-392), leader epochs and truncation detection (KIP-320), read_committed.
//! * One hard memory budget ([`budget`]) for everything the consumer buffers.
//! * Groups ([`group`], [`assignor`]): the classic protocol with the Java client's
//!   assignors and wire format.
//!
//! The design notes are in `DESIGN-consumer.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod assignor;
pub mod budget;
pub mod config;
mod consumer;
pub mod error;
pub mod group;
pub mod kip848;
mod offsets;
mod partition;
mod record;
pub mod session;

use std::fmt;
use std::sync::Arc;

pub use config::{
    AssignorKind, ConsumerConfig, ConsumerConfigBuilder, GroupProtocol, IsolationLevel, OffsetReset,
};
pub use consumer::{consume_count, Consumer, MemoryUsage, PartitionReport, RebalanceEvent};
pub use error::{ConsumerError, Result};
pub use record::{ConsumerRecord, FetchedBatch, TimestampKind};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name (shared: cloning is a reference count).
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl AsRef<str>, partition: i32) -> Self {
        Self {
            topic: Arc::from(topic.as_ref()),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl<S: AsRef<str>> From<(S, i32)> for TopicPartition {
    fn from((t, p): (S, i32)) -> Self {
        TopicPartition::new(t, p)
    }
}
