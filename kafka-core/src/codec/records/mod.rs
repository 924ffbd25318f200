//! Record batches: the `records` bytes of Produce requests and Fetch responses.
//!
//! * Magic 2 record batches (KIP-98; Kafka protocol guide, "Record Batch" and "Record"):
//!   built by [`RecordBatchBuilder`], read by [`BatchDecoder`]. zstd (id 4) is KIP-110.
//! * Legacy message sets, magic 0 and 1 (Kafka protocol guide, "Message Sets"; KIP-32 added
//!   the v1 timestamp and KIP-31 the relative offsets of compressed inner messages): read only,
//!   into the same [`RecordView`] shape, so old data stays readable.
//!
//! ```text
//! RecordBatch =>                   offset
//!   baseOffset            INT64     0
//!   batchLength           INT32     8   bytes after this field
//!   partitionLeaderEpoch  INT32    12
//!   magic                 INT8     16   2
//!   crc                   UINT32   17   CRC32C of attributes .. end
//!   attributes            INT16    21   0-2 codec, 3 timestamp type, 4 transactional,
//!                                       5 control, 6 delete horizon
//!   lastOffsetDelta       INT32    23
//!   baseTimestamp         INT64    27
//!   maxTimestamp          INT64    35
//!   producerId            INT64    43
//!   producerEpoch         INT16    51
//!   baseSequence          INT32    53
//!   recordCount           INT32    57
//!   records               [Record] 61   compressed as a whole when codec != none
//!
//! Record =>
//!   length VARINT, attributes INT8, timestampDelta VARLONG, offsetDelta VARINT,
//!   keyLength VARINT, key, valueLength VARINT, value, headerCount VARINT,
//!   [headerKeyLength VARINT, headerKey, headerValueLength VARINT, headerValue]
//! ```

use crate::error::{CodecError, Result};

mod builder;
mod decoder;
mod legacy;

pub use builder::{BatchOptions, RecordBatchBuilder};
pub use decoder::{BatchDecoder, Headers, RecordBatch, RecordBatches, RecordView, Records};

/// Bytes before `batchLength`'s payload: `baseOffset` and `batchLength` (Java's `LOG_OVERHEAD`).
pub const LOG_OVERHEAD: usize = 12;
/// Size of a magic 2 batch header, up to and including `recordCount`.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// The smallest possible record: one byte each for length, attributes, timestamp delta, offset
/// delta, key length, value length and header count.
pub const MIN_RECORD_SIZE: usize = 7;

pub(crate) const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Producer id meaning "not an idempotent producer".
pub const NO_PRODUCER_ID: i64 = -1;
/// Producer epoch meaning "none".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Base sequence meaning "none".
pub const NO_SEQUENCE: i32 = -1;
/// Partition leader epoch meaning "unknown" (what producers send).
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Timestamp meaning "none" (magic 0 messages, empty batches).
pub const NO_TIMESTAMP: i64 = -1;

/// What a batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer (`CreateTime`).
    #[default]
    CreateTime,
    /// Set by the broker on append (`LogAppendTime`); every record reports the batch's
    /// `maxTimestamp`.
    LogAppendTime,
}

/// A record header, as appended and as read back. Keys are bytes (Java makes them UTF-8
/// strings; nothing here requires it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// The header key.
    pub key: &'a [u8],
    /// The header value; `None` is a null value.
    pub value: Option<&'a [u8]>,
}

/// The kind of a control record (its key's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordKind {
    /// A transaction abort marker (type 0).
    Abort,
    /// A transaction commit marker (type 1).
    Commit,
    /// Any other control type (KRaft uses 2 and up for its own log); kept, not refused.
    Unknown(i16),
}

impl ControlRecordKind {
    /// The type id on the wire.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordKind::Abort => 0,
            ControlRecordKind::Commit => 1,
            ControlRecordKind::Unknown(id) => id,
        }
    }

    /// The kind for a type id.
    pub fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordKind::Abort,
            1 => ControlRecordKind::Commit,
            id => ControlRecordKind::Unknown(id),
        }
    }
}

/// A control record: a transaction marker written by the transaction coordinator (KIP-98).
///
/// Key: `version INT16 (0), type INT16`. Value (commit and abort): `version INT16 (0),
/// coordinatorEpoch INT32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// Commit or abort (or an unknown type).
    pub kind: ControlRecordKind,
    /// The epoch of the coordinator that wrote the marker; -1 when the value was absent.
    pub coordinator_epoch: i32,
}

impl ControlRecord {
    /// The record key: version 0, then the type.
    pub fn key(&self) -> [u8; 4] {
        let t = self.kind.id().to_be_bytes();
        [0, 0, t[0], t[1]]
    }

    /// The record value: version 0, then the coordinator epoch.
    pub fn value(&self) -> [u8; 6] {
        let e = self.coordinator_epoch.to_be_bytes();
        [0, 0, e[0], e[1], e[2], e[3]]
    }

    /// Reads a control record from a record's key and value.
    ///
    /// Like the Java client, a version above 0 is read with the version 0 layout (fields are
    /// only ever appended); a negative version is an error.
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self> {
        let key = key.unwrap_or_default();
        let [v0, v1, t0, t1, ..] = *key else {
            return Err(CodecError::InvalidLength {
                what: "control record key",
                len: key.len() as i64,
                remaining: key.len(),
            });
        };
        if i16::from_be_bytes([v0, v1]) < 0 {
            return Err(CodecError::InvalidLength {
                what: "control record key version",
                len: i16::from_be_bytes([v0, v1]).into(),
                remaining: key.len(),
            });
        }
        let kind = ControlRecordKind::from_id(i16::from_be_bytes([t0, t1]));
        let coordinator_epoch = match (kind, value) {
            (_, Some(&[v0, v1, e0, e1, e2, e3, ..])) if i16::from_be_bytes([v0, v1]) >= 0 => {
                i32::from_be_bytes([e0, e1, e2, e3])
            }
            (ControlRecordKind::Unknown(_), _) => -1,
            (_, value) => {
                let len = value.map_or(-1, |v| v.len() as i64);
                return Err(CodecError::InvalidLength {
                    what: "transaction marker value",
                    len,
                    remaining: len.max(0) as usize,
                });
            }
        };
        Ok(Self {
            kind,
            coordinator_epoch,
        })
    }
}

/// The fixed header of a batch, as read off the wire (magic 2), or as synthesised for a legacy
/// message (magic 0/1: producer fields are "none", the leader epoch is -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field (for legacy: the outer message's size).
    pub batch_length: i32,
    /// Partition leader epoch when the batch was appended.
    pub partition_leader_epoch: i32,
    /// The magic byte: 2, or 0/1 for legacy messages.
    pub magic: i8,
    /// The stored checksum (CRC32C for magic 2, CRC32 for legacy).
    pub crc: u32,
    /// Attribute bits (for legacy, the message attributes: codec and timestamp type).
    pub attributes: i16,
    /// Offset of the last record, relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (`baseTimestamp`).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the append time for `LogAppendTime`).
    pub max_timestamp: i64,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// The compression codec (attribute bits 0-2).
    pub fn compression(&self) -> Result<crate::codec::compression::Compression> {
        crate::codec::compression::Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// The timestamp type (attribute bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// A control batch: its one record is a [`ControlRecord`] (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// `baseTimestamp` is the delete horizon of a compacted batch (attribute bit 6, KIP-534).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(self.last_offset_delta.into())
    }

    /// The offset after the batch: where the next fetch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
}

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;
