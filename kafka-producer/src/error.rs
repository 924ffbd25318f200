//! What can go wrong, and what it means for the records.

use std::sync::Arc;
use std::time::Duration;

use kafka_core::KafkaCode;

/// Whether a failed record may be in the log anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Certainly not written: sending it again cannot duplicate it.
    NotPersisted,
    /// May have been written (the request reached a broker and its answer was lost or came
    /// too late). Sending it again may duplicate it; a read can tell.
    PossiblyPersisted,
}

/// A producer error. Every variant says, through [`Error::outcome`], whether the record(s) it
/// concerns may have been written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (found at build time).
    #[error("invalid producer configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The cluster client failed (metadata, connection, coordinator lookup...).
    #[error("{0}")]
    Client(Arc<kafka_core::client::Error>),
    /// `send` waited `max.block.ms` for buffer space (`buffer.memory`) or for the topic's
    /// metadata. Nothing was queued.
    #[error("send blocked for {waited:?} ({what}); nothing was queued")]
    BlockTimeout {
        /// What it waited for.
        what: &'static str,
        /// How long.
        waited: Duration,
    },
    /// The record alone is larger than `max.request.size` or `buffer.memory`.
    #[error("record of {size} bytes exceeds {limit_name} ({limit} bytes)")]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The limit.
        limit: usize,
        /// Its setting.
        limit_name: &'static str,
    },
    /// The topic has no such partition.
    #[error("topic {topic:?} has no partition {partition} ({count} partitions)")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        count: usize,
    },
    /// The broker refused the batch with this error code.
    #[error("{topic}-{partition}: broker refused the batch: {code:?}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Broker {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The Kafka error code.
        code: KafkaCode,
        /// The broker's message, if any.
        message: Option<String>,
        /// Whether the batch may be in the log (earlier attempts may have reached it).
        outcome: Outcome,
    },
    /// `delivery.timeout.ms` passed before the batch was acknowledged.
    #[error("{topic}-{partition}: delivery.timeout.ms ({timeout:?}) expired; {}", if *outcome == Outcome::PossiblyPersisted { "the batch may have been written" } else { "the batch was not written" })]
    DeliveryTimeout {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The configured timeout.
        timeout: Duration,
        /// Whether an attempt may have reached the log.
        outcome: Outcome,
        /// The last error seen, if any.
        last_error: Option<String>,
    },
    /// The producer id was fenced: another producer with the same `transactional.id` started
    /// (`PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH`). Fatal: close this producer; the newer
    /// one owns the transactional id.
    #[error("producer fenced by a newer instance with the same transactional.id ({code:?}); close this producer")]
    Fenced {
        /// The code the broker sent.
        code: KafkaCode,
    },
    /// The producer hit a fatal error earlier and accepts nothing more.
    #[error("producer is in a fatal state: {cause}")]
    Fatal {
        /// The first fatal error.
        cause: Arc<Error>,
    },
    /// The current transaction failed and must be aborted (`abort_transaction`), after which
    /// a new one can begin. Records of the failed transaction will never be visible to
    /// read_committed consumers.
    #[error("transaction must be aborted: {cause}")]
    AbortableTransaction {
        /// Why.
        cause: Arc<Error>,
    },
    /// The transaction was aborted (by `abort_transaction` or because it failed) before this
    /// record was sent.
    #[error("transaction aborted; record not sent")]
    TransactionAborted,
    /// A transactional call made in the wrong state (commit without begin, say).
    #[error("invalid transaction state: {0}")]
    TransactionState(String),
    /// A transactional call failed with this code from the transaction or group coordinator.
    #[error("{api}: coordinator answered {code:?}")]
    Coordinator {
        /// The request.
        api: &'static str,
        /// The code.
        code: KafkaCode,
    },
    /// A batch could not be encoded (a record over the format's limits).
    #[error("record encoding failed: {0}")]
    Codec(Arc<kafka_core::CodecError>),
    /// The producer was closed before the record was delivered.
    #[error("producer closed before the record was sent")]
    Closed,
}

impl Error {
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::Config {
            reason: reason.into(),
        }
    }

    /// Whether the record(s) may be in the log.
    pub fn outcome(&self) -> Outcome {
        match self {
            Error::Broker { outcome, .. } | Error::DeliveryTimeout { outcome, .. } => *outcome,
            Error::Fatal { cause } | Error::AbortableTransaction { cause } => cause.outcome(),
            _ => Outcome::NotPersisted,
        }
    }

    /// Whether the producer can carry on (false for fencing and other fatal errors).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Fenced { .. } | Error::Fatal { .. })
    }

    /// The Kafka error code, when a broker sent one.
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            Error::Broker { code, .. }
            | Error::Fenced { code }
            | Error::Coordinator { code, .. } => Some(*code),
            Error::Client(e) => e.kafka_code(),
            Error::Fatal { cause } | Error::AbortableTransaction { cause } => cause.kafka_code(),
            _ => None,
        }
    }
}

impl From<kafka_core::client::Error> for Error {
    fn from(e: kafka_core::client::Error) -> Self {
        match e {
            kafka_core::client::Error::Config { reason } => Error::Config { reason },
            e => Error::Client(Arc::new(e)),
        }
    }
}

impl From<kafka_core::CodecError> for Error {
    fn from(e: kafka_core::CodecError) -> Self {
        Error::Codec(Arc::new(e))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
