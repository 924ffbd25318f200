//! The consumer's error type.

use kafka_core::client::Error as ClientError;
use kafka_core::{CodecError, KafkaCode};

/// Everything the consumer can report.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// A setting is missing, malformed or contradicts another one.
    #[error("invalid consumer configuration: {0}")]
    Config(String),
    /// The cluster layer failed (connection, routing, a Kafka error code, a timeout...).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A fetched record batch could not be decoded (CRC mismatch, corrupt lengths, a
    /// decompression bomb...). The partition is not advanced past it.
    #[error("{topic}-{partition}: corrupt data at offset {offset}: {source}")]
    Corrupt {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The position being read.
        offset: i64,
        /// The codec error.
        #[source]
        source: CodecError,
    },
    /// The position is out of the log's range and `auto.offset.reset` is `none`
    /// (or the partition has no committed offset and the policy is `none`). The partition
    /// is neither fetched nor handed out until the application seeks.
    #[error(
        "{topic}-{partition}: no valid position (offset {offset:?}) and auto.offset.reset=none"
    )]
    NoOffset {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offending offset, if there was one.
        offset: Option<i64>,
    },
    /// The log was truncated below records already consumed (KIP-320: an unclean leader
    /// election) and `auto.offset.reset` is `none`. The records from `end_offset` to
    /// `position` that the application has seen are gone, and other records may stand at
    /// those offsets now. The partition's position is `end_offset` (the first offset that
    /// may differ), and it is neither fetched nor handed out until the application seeks.
    /// (With `earliest` or `latest` the consumer moves to `end_offset` without this error,
    /// as Java's does.)
    #[error("{topic}-{partition}: log truncated: consumed up to {position}, the leader's log for epoch {epoch} ends at {end_offset}")]
    LogTruncation {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The consumer's position.
        position: i64,
        /// The diverging epoch.
        epoch: i32,
        /// Where the leader's log ends for that epoch.
        end_offset: i64,
    },
    /// A partition is not assigned to this consumer.
    #[error("{topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The operation needs `group.id`.
    #[error("{0} needs group.id")]
    NoGroup(&'static str),
    /// A broker answered a per-partition request with an error code.
    #[error("{what} {topic}-{partition}: {code}")]
    Partition {
        /// What was being done.
        what: &'static str,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The code.
        code: KafkaCode,
    },
    /// The group coordinator refused a group operation.
    #[error("group {group}: {what}: {code}")]
    Group {
        /// Group id.
        group: String,
        /// What was being done.
        what: &'static str,
        /// The code.
        code: KafkaCode,
    },
    /// `group.protocol=consumer` (KIP-848) but the broker does not offer
    /// ConsumerGroupHeartbeat and `group.protocol.fallback` is not `classic`.
    #[error("group.protocol=consumer needs a broker with ConsumerGroupHeartbeat (KIP-848, Kafka 4.0+); set group.protocol=classic or group.protocol.fallback=classic")]
    GroupProtocolUnsupported,
    /// The member was fenced or left the group while the operation ran; its partitions
    /// were lost (a later poll rejoins).
    #[error("group {group}: membership lost ({code})")]
    MembershipLost {
        /// Group id.
        group: String,
        /// Why.
        code: KafkaCode,
    },
    /// Every member of the group must speak a common assignor; the coordinator chose one
    /// this consumer does not know.
    #[error("unknown assignor {0:?} chosen by the group")]
    UnknownAssignor(String),
    /// A group message (subscription or assignment) could not be decoded.
    #[error("malformed {what}: {reason}")]
    Protocol {
        /// Which message.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The consumer was closed.
    #[error("the consumer is closed")]
    Closed,
}

/// Results of this crate.
pub type Result<T, E = ConsumerError> = std::result::Result<T, E>;

impl ConsumerError {
    /// The Kafka error code behind this error, if there is one.
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            ConsumerError::Client(e) => e.kafka_code(),
            ConsumerError::Partition { code, .. }
            | ConsumerError::Group { code, .. }
            | ConsumerError::MembershipLost { code, .. } => Some(*code),
            _ => None,
        }
    }
}
