//! Offsets: list offsets (earliest, latest, max timestamp, by time) and delete records,
//! both sent to each partition's leader and merged.

use std::collections::{BTreeMap, BTreeSet};

use kafka_core::client::Target;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, DeleteRecordsRequest, ListOffsetsRequest};

use crate::admin::{tn, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result, TopicPartition};

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark; last stable offset with read-committed).
    Latest,
    /// The offset of the record with the highest timestamp (ListOffsets v7+, KIP-734).
    MaxTimestamp,
    /// The first offset whose timestamp is at least this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A listed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedOffset {
    /// The offset (-1 when no record matches a timestamp).
    pub offset: i64,
    /// The record's timestamp (-1 when not applicable).
    pub timestamp: i64,
    /// The leader epoch of that offset.
    pub leader_epoch: Option<i32>,
}

/// Read isolation of list offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Up to the high watermark.
    #[default]
    ReadUncommitted,
    /// Up to the last stable offset.
    ReadCommitted,
}

impl Admin {
    /// Looks up offsets per partition at each partition's leader.
    pub async fn list_offsets(
        &self,
        specs: &BTreeMap<TopicPartition, OffsetSpec>,
        isolation: IsolationLevel,
    ) -> Result<ItemResults<TopicPartition, ListedOffset>> {
        if specs
            .values()
            .any(|s| matches!(s, OffsetSpec::Timestamp(t) if *t < 0))
        {
            return Err(AdminError::invalid(
                "a timestamp to look up cannot be negative",
            ));
        }
        let parts: BTreeSet<TopicPartition> = specs.keys().cloned().collect();
        self.by_leader("list offsets", parts, |node, tps| async move {
            let mut topics: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for tp in &tps {
                topics.entry(tp.topic.clone()).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_timestamp(specs[tp].wire()),
                );
            }
            let sent = self
                .send(&Target::Broker(node), |v| {
                    if v < 7 && tps.iter().any(|tp| specs[tp] == OffsetSpec::MaxTimestamp) {
                        return Err(AdminError::Unsupported {
                            what: "max-timestamp offsets (ListOffsets v7)".into(),
                            broker: node,
                        });
                    }
                    Ok(ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_isolation_level(match isolation {
                            IsolationLevel::ReadUncommitted => 0,
                            IsolationLevel::ReadCommitted => 1,
                        })
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    ListOffsetsTopic::default()
                                        .with_name(tn(t))
                                        .with_partitions(ps.clone())
                                })
                                .collect(),
                        ))
                })
                .await?;
            let mut out = Vec::new();
            for t in &sent.response.topics {
                for p in &t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    out.push((
                        tp,
                        match ItemError::from_code(p.error_code, None) {
                            Some(e) => Err(e),
                            None => Ok(ListedOffset {
                                offset: p.offset,
                                timestamp: p.timestamp,
                                leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                            }),
                        },
                    ));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Deletes records before the given offsets (the new log start offsets; `-1`: the high
    /// watermark). Each outcome is the partition's new low watermark.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<ItemResults<TopicPartition, i64>> {
        let timeout = self.op_timeout_ms();
        let parts: BTreeSet<TopicPartition> = before.keys().cloned().collect();
        self.by_leader("delete records", parts, |node, tps| async move {
            let mut topics: BTreeMap<String, Vec<DeleteRecordsPartition>> = BTreeMap::new();
            for tp in &tps {
                topics.entry(tp.topic.clone()).or_default().push(
                    DeleteRecordsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_offset(before[tp]),
                );
            }
            let sent = self
                .send(&Target::Broker(node), |_| {
                    Ok(DeleteRecordsRequest::default()
                        .with_timeout_ms(timeout)
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    DeleteRecordsTopic::default()
                                        .with_name(tn(t))
                                        .with_partitions(ps.clone())
                                })
                                .collect(),
                        ))
                })
                .await?;
            let mut out = Vec::new();
            for t in &sent.response.topics {
                for p in &t.partitions {
                    out.push((
                        TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        ItemError::from_code(p.error_code, None).map_or(Ok(p.low_watermark), Err),
                    ));
                }
            }
            Ok(out)
        })
        .await
    }
}
