//! Offset requests: ListOffsets (reset, seek by timestamp), OffsetFetch (committed),
//! OffsetCommit.

use std::collections::{BTreeMap, HashMap};

use kafka_core::client::{Client, ConnectionClass, Error as ClientError, ErrorContext, Target};
use kafka_core::KafkaCode;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::error::{ConsumerError, Result};
use crate::TopicPartition;

/// ListOffsets timestamp for the log start.
pub(crate) const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the log end (or the last stable offset under read_committed).
pub(crate) const LATEST: i64 = -1;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// An offset and the leader epoch that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetAndEpoch {
    pub offset: i64,
    pub epoch: i32,
}

/// ListOffsets for each partition at `timestamps` (ms, or [`EARLIEST`]/[`LATEST`]); one
/// request per leader, retried on retriable errors. `None`: no record at or after the
/// timestamp.
pub(crate) async fn list_offsets(
    client: &Client,
    isolation: i8,
    wanted: &[(TopicPartition, i64)],
) -> Result<HashMap<TopicPartition, Option<OffsetAndEpoch>>> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let topics: Vec<&str> = wanted.iter().map(|(tp, _)| &*tp.topic).collect();
    client
        .retry("list offsets", || async {
            let mut meta = client.metadata();
            if wanted
                .iter()
                .any(|(tp, _)| meta.leader(&tp.topic, tp.partition).is_none())
            {
                meta = client.refresh_metadata(&topics).await?;
            }
            let mut by_leader: BTreeMap<i32, Vec<&(TopicPartition, i64)>> = BTreeMap::new();
            for w in wanted.iter().filter(|(tp, _)| !out.contains_key(tp)) {
                let leader = meta.leader(&w.0.topic, w.0.partition).ok_or_else(|| {
                    ClientError::kafka(
                        KafkaCode::LeaderNotAvailable,
                        ErrorContext::new().partition(w.0.topic.to_string(), w.0.partition),
                    )
                })?;
                by_leader.entry(leader.leader).or_default().push(w);
            }
            // Not a join of futures: the leaders answer quickly and this runs rarely.
            let mut result = HashMap::new();
            for (leader, parts) in by_leader {
                let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
                for (tp, ts) in &parts {
                    topics.entry(&tp.topic).or_default().push(
                        ListOffsetsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(*ts),
                    );
                }
                let req = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_isolation_level(isolation)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, p)| {
                                ListOffsetsTopic::default()
                                    .with_name(topic_name(t))
                                    .with_partitions(p)
                            })
                            .collect(),
                    );
                let resp = client.send_to(Target::Broker(leader), req).await?;
                for t in resp.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
                        client.check(
                            p.error_code,
                            ErrorContext::new()
                                .broker(leader)
                                .api("ListOffsets")
                                .partition(tp.topic.to_string(), tp.partition),
                        )?;
                        let v = (p.offset >= 0).then_some(OffsetAndEpoch {
                            offset: p.offset,
                            epoch: p.leader_epoch,
                        });
                        result.insert(tp, v);
                    }
                }
            }
            Ok(result)
        })
        .await
        .map(|r| {
            out.extend(r);
            out
        })
        .map_err(ConsumerError::from)
}

/// The committed offsets of `parts` in `group` (`None`: nothing committed).
pub(crate) async fn fetch_committed(
    client: &Client,
    group: &str,
    parts: &[TopicPartition],
) -> Result<HashMap<TopicPartition, Option<OffsetAndEpoch>>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in parts {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    client
        .retry("offset fetch", || async {
            let target = Target::group(group);
            let (node, conn) = client.connection(&target, ConnectionClass::Group).await?;
            // v10 names topics by id only; v9 is enough for everything here.
            let version = conn
                .max_version(ApiKey::OffsetFetch as i16)
                .unwrap_or(1)
                .min(9);
            let ctx = || {
                ErrorContext::new()
                    .broker(node)
                    .api("OffsetFetch")
                    .coordinator(kafka_core::client::CoordinatorKind::Group, group)
            };
            let mut req = OffsetFetchRequest::default().with_require_stable(version >= 7);
            if version >= 8 {
                req = req.with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                    .with_topics(Some(
                        by_topic
                            .iter()
                            .map(|(t, p)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(topic_name(t))
                                    .with_partition_indexes(p.clone())
                            })
                            .collect(),
                    ))]);
            } else {
                req = req
                    .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                    .with_topics(Some(
                        by_topic
                            .iter()
                            .map(|(t, p)| {
                                OffsetFetchRequestTopic::default()
                                    .with_name(topic_name(t))
                                    .with_partition_indexes(p.clone())
                            })
                            .collect(),
                    ));
            }
            let resp = conn
                .send_at(req, version)
                .await
                .map_err(|e| ClientError::net(e, ctx()))?;
            let mut out = HashMap::new();
            let mut put = |t: &str, p: i32, off: i64, epoch: i32, code: i16| {
                client.check(code, ctx().partition(t, p))?;
                out.insert(
                    TopicPartition::new(t, p),
                    (off >= 0).then_some(OffsetAndEpoch { offset: off, epoch }),
                );
                Ok::<_, ClientError>(())
            };
            if version >= 8 {
                for g in &resp.groups {
                    client.check(g.error_code, ctx())?;
                    for t in &g.topics {
                        for p in &t.partitions {
                            put(
                                t.name.as_str(),
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.error_code,
                            )?;
                        }
                    }
                }
            } else {
                client.check(resp.error_code, ctx())?;
                for t in &resp.topics {
                    for p in &t.partitions {
                        put(
                            t.name.as_str(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.error_code,
                        )?;
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(ConsumerError::from)
}

/// Who commits: the generation and member id of a group member, or (-1, "") for a consumer
/// that only uses the group for offsets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Committer {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
}

/// Commits `offsets` for `group` (sent once per coordinator attempt; retriable errors are
/// retried within `default.api.timeout.ms`). Group errors (rebalance in progress, unknown
/// member, illegal generation) are not retried: they are the caller's.
pub(crate) async fn commit(
    client: &Client,
    group: &str,
    who: &Committer,
    offsets: &[(TopicPartition, i64, i32)],
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, off, epoch) in offsets {
        by_topic.entry(&tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(*off)
                .with_committed_leader_epoch(*epoch)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    let topics: Vec<OffsetCommitRequestTopic> = by_topic
        .into_iter()
        .map(|(t, p)| {
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(t))
                .with_partitions(p)
        })
        .collect();
    let result = client
        .retry("offset commit", || async {
            let target = Target::group(group);
            let (node, conn) = client.connection(&target, ConnectionClass::Group).await?;
            // v10 names topics by id only; v9 is enough for everything here.
            let version = conn
                .max_version(ApiKey::OffsetCommit as i16)
                .unwrap_or(2)
                .min(9);
            let ctx = || {
                ErrorContext::new()
                    .broker(node)
                    .api("OffsetCommit")
                    .coordinator(kafka_core::client::CoordinatorKind::Group, group)
            };
            let mut req = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_generation_id_or_member_epoch(who.generation)
                .with_member_id(StrBytes::from_string(who.member_id.clone()))
                .with_topics(topics.clone());
            if version >= 7 {
                req =
                    req.with_group_instance_id(who.instance_id.clone().map(StrBytes::from_string));
            }
            let resp = conn
                .send_at(req, version)
                .await
                .map_err(|e| ClientError::net(e, ctx()))?;
            for t in &resp.topics {
                for p in &t.partitions {
                    client.check(
                        p.error_code,
                        ctx().partition(t.name.as_str(), p.partition_index),
                    )?;
                }
            }
            Ok(())
        })
        .await;
    match result {
        Ok(()) => {
            metrics::counter!("kafka_consumer_commits_total").increment(1);
            Ok(())
        }
        Err(e) => {
            metrics::counter!("kafka_consumer_commit_failures_total").increment(1);
            let code = e.kafka_code();
            match code {
                Some(
                    c @ (KafkaCode::RebalanceInProgress
                    | KafkaCode::IllegalGeneration
                    | KafkaCode::UnknownMemberId
                    | KafkaCode::FencedInstanceId),
                ) => Err(ConsumerError::Group {
                    group: group.to_owned(),
                    what: "commit",
                    code: c,
                }),
                _ => Err(e.into()),
            }
        }
    }
}
