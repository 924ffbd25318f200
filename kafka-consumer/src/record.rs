//! Records as the application sees them.

use std::sync::Arc;

use bytes::Bytes;
use kafka_core::codec::records::{RecordBatch, RecordView, TimestampType};
use kafka_core::CodecError;

use crate::TopicPartition;

/// What a record's timestamp means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimestampKind {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when appended.
    LogAppendTime,
}

/// One record, owned by the application. Key, value and headers are [`Bytes`] slices of the
/// fetch response (or of the decompressed batch): nothing is copied.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// What the timestamp means.
    pub timestamp_kind: TimestampKind,
    /// The leader epoch the batch was written in (-1 unknown).
    pub leader_epoch: i32,
    /// Key (`None`: null).
    pub key: Option<Bytes>,
    /// Value (`None`: null, a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order (key, value).
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

impl ConsumerRecord {
    pub(crate) fn from_view(
        topic: &Arc<str>,
        partition: i32,
        kind: TimestampKind,
        leader_epoch: i32,
        r: &RecordView<'_>,
    ) -> Result<Self, CodecError> {
        let mut headers = Vec::new();
        if r.header_count() > 0 {
            headers.reserve(r.header_count());
            for h in r.headers() {
                let h = h?;
                headers.push((r.bytes_of(h.key), h.value.map(|v| r.bytes_of(v))));
            }
        }
        Ok(ConsumerRecord {
            topic: Arc::clone(topic),
            partition,
            offset: r.offset(),
            timestamp: r.timestamp(),
            timestamp_kind: kind,
            leader_epoch,
            key: r.key_bytes(),
            value: r.value_bytes(),
            headers,
        })
    }

    /// The topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition {
            topic: Arc::clone(&self.topic),
            partition: self.partition,
        }
    }
}

/// A whole record batch handed to the application ([`Consumer::poll_batches`]): the fastest
/// way to read, as the records are iterated as borrowed views with no per-record work
/// beyond decoding. Control batches and aborted transactions never reach here.
///
/// [`Consumer::poll_batches`]: crate::Consumer::poll_batches
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    pub(crate) tp: TopicPartition,
    pub(crate) batch: RecordBatch,
    pub(crate) from: i64,
}

impl FetchedBatch {
    /// The topic and partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The underlying batch (header, codec...).
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// What record timestamps mean in this batch.
    pub fn timestamp_kind(&self) -> TimestampKind {
        match self.batch.timestamp_type() {
            TimestampType::LogAppendTime => TimestampKind::LogAppendTime,
            _ => TimestampKind::CreateTime,
        }
    }

    /// The offset after this batch (where the position moved when it was handed out).
    pub fn next_offset(&self) -> i64 {
        self.batch.last_offset() + 1
    }

    /// The records at or after the position the batch was fetched for (a batch can start
    /// before it after a seek), as zero-copy views.
    pub fn records(&self) -> impl Iterator<Item = Result<RecordView<'_>, CodecError>> + '_ {
        let from = self.from;
        self.batch
            .records()
            .filter(move |r| r.as_ref().map_or(true, |r| r.offset() >= from))
    }

    /// The records as owned [`ConsumerRecord`]s.
    pub fn to_records(&self) -> Result<Vec<ConsumerRecord>, CodecError> {
        let kind = self.timestamp_kind();
        let epoch = self.batch.header().partition_leader_epoch;
        self.records()
            .map(|r| {
                r.and_then(|r| {
                    ConsumerRecord::from_view(&self.tp.topic, self.tp.partition, kind, epoch, &r)
                })
            })
            .collect()
    }
}
