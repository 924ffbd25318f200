//! Consumer groups: list (state and type filters, every broker, merged), describe (classic
//! groups through DescribeGroups, KIP-848 consumer groups through ConsumerGroupDescribe,
//! share groups through ShareGroupDescribe), delete; list, alter and delete committed
//! offsets. Group requests go to the group's coordinator.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Buf;
use kafka_core::client::Target;
use kafka_core::KafkaCode;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ShareGroupDescribeRequest,
};

use crate::acls::{authorized_operations, AclOperation};
use crate::admin::{by_topic, opt_msg, sb, tn, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result, TopicPartition};

/// Which groups to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListGroupsFilter {
    /// Only groups in these states (`Stable`, `Empty`...; ListGroups v4+). Empty: all.
    pub states: Vec<String>,
    /// Only groups of these types (`classic`, `consumer`, `share`; v5+). Empty: all.
    pub types: Vec<String>,
}

/// A listed group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer`, `connect`, `` for simple groups...).
    pub protocol_type: String,
    /// State (v4+).
    pub state: Option<String>,
    /// Type (`classic`, `consumer`, `share`; v5+).
    pub group_type: Option<String>,
    /// The coordinator that listed it.
    pub coordinator: i32,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Assigned partitions.
    pub assignment: BTreeSet<TopicPartition>,
}

/// The kind of group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum GroupType {
    /// The classic protocol (JoinGroup/SyncGroup).
    Classic,
    /// KIP-848 consumer group.
    Consumer,
    /// KIP-932 share group.
    Share,
}

/// A described group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// Kind.
    pub group_type: GroupType,
    /// State (`Stable`, `Empty`, `Dead`...).
    pub state: String,
    /// Protocol type (classic groups).
    pub protocol_type: String,
    /// The assignor (`range`, `uniform`...).
    pub assignor: String,
    /// Members and their assignments.
    pub members: Vec<MemberDescription>,
    /// The coordinator's node id.
    pub coordinator: i32,
    /// What the caller may do with the group.
    pub authorized_operations: Option<BTreeSet<AclOperation>>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommittedOffset {
    /// The offset (the next record to consume).
    pub offset: i64,
    /// The leader epoch of the record before it, if known.
    pub leader_epoch: Option<i32>,
    /// Metadata the committer stored.
    pub metadata: Option<String>,
}

/// Reads a `ConsumerProtocolAssignment` (classic consumer groups) with bounds checks:
/// the bytes come from another client.
pub(crate) fn parse_assignment(mut b: &[u8]) -> Option<BTreeSet<TopicPartition>> {
    let mut out = BTreeSet::new();
    if b.is_empty() {
        return Some(out);
    }
    if b.remaining() < 6 {
        return None;
    }
    let _version = b.get_i16();
    let topics = b.get_i32();
    for _ in 0..topics.max(0) {
        if b.remaining() < 2 {
            return None;
        }
        let len = usize::try_from(b.get_i16()).ok()?;
        if b.remaining() < len + 4 {
            return None;
        }
        let topic = std::str::from_utf8(&b[..len]).ok()?.to_owned();
        b.advance(len);
        let n = b.get_i32();
        let n = usize::try_from(n).ok()?;
        if b.remaining() < n.checked_mul(4)? {
            return None;
        }
        for _ in 0..n {
            out.insert(TopicPartition::new(topic.clone(), b.get_i32()));
        }
    }
    Some(out)
}

impl Admin {
    /// Lists groups on every broker, merged (each group is listed by its coordinator).
    /// A broker that fails makes the call fail, naming it.
    pub async fn list_groups(&self, filter: &ListGroupsFilter) -> Result<Vec<GroupListing>> {
        let mut out = Vec::new();
        let mut failures = Vec::new();
        let brokers = self.broker_ids().await?;
        for &b in &brokers {
            let r = self
                .call(
                    "list groups",
                    Target::Broker(b),
                    |v| {
                        let mut r = ListGroupsRequest::default();
                        if !filter.states.is_empty() {
                            if v < 4 {
                                return Err(AdminError::Unsupported {
                                    what: "listing groups by state (ListGroups v4)".into(),
                                    broker: b,
                                });
                            }
                            r.states_filter = filter.states.iter().map(|s| sb(s)).collect();
                        }
                        if !filter.types.is_empty() {
                            if v < 5 {
                                return Err(AdminError::Unsupported {
                                    what: "listing groups by type (ListGroups v5)".into(),
                                    broker: b,
                                });
                            }
                            r.types_filter = filter.types.iter().map(|s| sb(s)).collect();
                        }
                        Ok(r)
                    },
                    |r: &ListGroupsResponse| (r.error_code, None),
                )
                .await;
            match r {
                Ok(sent) => {
                    for g in &sent.response.groups {
                        out.push(GroupListing {
                            group_id: g.group_id.0.to_string(),
                            protocol_type: g.protocol_type.to_string(),
                            state: (sent.version >= 4).then(|| g.group_state.to_string()),
                            group_type: (sent.version >= 5).then(|| g.group_type.to_string()),
                            coordinator: b,
                        });
                    }
                }
                Err(e) => failures.push((
                    format!("broker {b}"),
                    ItemError::new(
                        e.kafka_code().unwrap_or(KafkaCode::UnknownServerError),
                        Some(e.to_string()),
                    ),
                )),
            }
        }
        if !failures.is_empty() {
            return Err(AdminError::Partial {
                operation: "list groups",
                total: brokers.len(),
                failures,
            });
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Describes groups: KIP-848 consumer groups through ConsumerGroupDescribe, classic
    /// ones through DescribeGroups (member assignments decoded for `consumer` groups).
    /// A group that does not exist is described in state `Dead` by classic brokers
    /// (Kafka's own behaviour), or fails with `GROUP_ID_NOT_FOUND`.
    pub async fn describe_groups(
        &self,
        group_ids: &[&str],
    ) -> Result<ItemResults<String, GroupDescription>> {
        let mut out = ItemResults::new("describe groups");
        for &g in group_ids {
            let r = self.describe_one_group(g).await;
            match r {
                Ok(d) => out.insert(g.to_owned(), d),
                Err(e) => out.insert(
                    g.to_owned(),
                    Err(ItemError::new(
                        e.kafka_code().unwrap_or(KafkaCode::UnknownServerError),
                        Some(e.to_string()),
                    )),
                ),
            }
        }
        Ok(out)
    }

    async fn describe_one_group(
        &self,
        g: &str,
    ) -> Result<std::result::Result<GroupDescription, ItemError>> {
        let target = Target::group(g);
        // KIP-848 first, when the coordinator has it.
        let (_, conn) = self
            .client()
            .connection(&target, kafka_core::client::ConnectionClass::Admin)
            .await?;
        if conn
            .max_version(ApiKey::ConsumerGroupDescribe as i16)
            .is_some()
        {
            let sent = self
                .call(
                    "describe groups",
                    target.clone(),
                    |_| {
                        Ok(ConsumerGroupDescribeRequest::default()
                            .with_group_ids(vec![GroupId(sb(g))])
                            .with_include_authorized_operations(true))
                    },
                    |r: &ConsumerGroupDescribeResponse| {
                        // Retriable group-level codes (coordinator moving) retry the call.
                        r.groups
                            .first()
                            .filter(|d| KafkaCode::from_i16(d.error_code).is_retriable())
                            .map_or((0, None), |d| (d.error_code, opt_msg(&d.error_message)))
                    },
                )
                .await?;
            if let Some(d) = sent.response.groups.first() {
                match KafkaCode::from_i16(d.error_code) {
                    KafkaCode::None => {
                        let members = d
                            .members
                            .iter()
                            .map(|m| MemberDescription {
                                member_id: m.member_id.to_string(),
                                instance_id: m.instance_id.as_ref().map(|s| s.to_string()),
                                client_id: m.client_id.to_string(),
                                client_host: m.client_host.to_string(),
                                assignment: m
                                    .assignment
                                    .topic_partitions
                                    .iter()
                                    .flat_map(|t| {
                                        t.partitions.iter().map(move |p| {
                                            TopicPartition::new(t.topic_name.0.to_string(), *p)
                                        })
                                    })
                                    .collect(),
                            })
                            .collect();
                        return Ok(Ok(GroupDescription {
                            group_id: g.to_owned(),
                            group_type: GroupType::Consumer,
                            state: d.group_state.to_string(),
                            protocol_type: "consumer".into(),
                            assignor: d.assignor_name.to_string(),
                            members,
                            coordinator: sent.node,
                            authorized_operations: authorized_operations(d.authorized_operations),
                        }));
                    }
                    // Not a KIP-848 group: a classic one (or none at all). Kafka 3.x lists
                    // the API but answers UNSUPPORTED_VERSION unless the new coordinator
                    // is enabled.
                    KafkaCode::GroupIdNotFound | KafkaCode::UnsupportedVersion => {}
                    _ => {
                        return Ok(Err(ItemError::from_code(
                            d.error_code,
                            d.error_message.as_deref(),
                        )
                        .unwrap_or_else(|| {
                            ItemError::new(KafkaCode::UnknownServerError, None)
                        })))
                    }
                }
            }
        }
        let sent = self
            .call(
                "describe groups",
                target,
                |v| {
                    let mut r = DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(g))]);
                    if v >= 3 {
                        r.include_authorized_operations = true;
                    }
                    Ok(r)
                },
                |r: &kafka_protocol::messages::DescribeGroupsResponse| {
                    r.groups
                        .first()
                        .filter(|d| KafkaCode::from_i16(d.error_code).is_retriable())
                        .map_or((0, None), |d| (d.error_code, opt_msg(&d.error_message)))
                },
            )
            .await?;
        let Some(d) = sent.response.groups.first() else {
            return Ok(Err(ItemError::new(
                KafkaCode::UnknownServerError,
                Some("empty DescribeGroups response".into()),
            )));
        };
        if let Some(e) = ItemError::from_code(d.error_code, d.error_message.as_deref()) {
            return Ok(Err(e));
        }
        let consumer = d.protocol_type.as_str() == "consumer";
        let members = d
            .members
            .iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    parse_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    BTreeSet::new()
                },
            })
            .collect();
        Ok(Ok(GroupDescription {
            group_id: g.to_owned(),
            group_type: GroupType::Classic,
            state: d.group_state.to_string(),
            protocol_type: d.protocol_type.to_string(),
            assignor: d.protocol_data.to_string(),
            members,
            coordinator: sent.node,
            authorized_operations: if sent.version >= 3 {
                authorized_operations(d.authorized_operations)
            } else {
                None
            },
        }))
    }

    /// Describes share groups (KIP-932; ShareGroupDescribe, Kafka 4.1+).
    pub async fn describe_share_groups(
        &self,
        group_ids: &[&str],
    ) -> Result<ItemResults<String, GroupDescription>> {
        let mut out = ItemResults::new("describe share groups");
        for &g in group_ids {
            let sent = self
                .call(
                    "describe share groups",
                    Target::group(g),
                    |_| {
                        Ok(ShareGroupDescribeRequest::default()
                            .with_group_ids(vec![GroupId(sb(g))])
                            .with_include_authorized_operations(true))
                    },
                    |_| (0, None),
                )
                .await?;
            for d in &sent.response.groups {
                let v = match ItemError::from_code(d.error_code, d.error_message.as_deref()) {
                    Some(e) => Err(e),
                    None => Ok(GroupDescription {
                        group_id: g.to_owned(),
                        group_type: GroupType::Share,
                        state: d.group_state.to_string(),
                        protocol_type: "share".into(),
                        assignor: d.assignor_name.to_string(),
                        members: d
                            .members
                            .iter()
                            .map(|m| MemberDescription {
                                member_id: m.member_id.to_string(),
                                instance_id: None,
                                client_id: m.client_id.to_string(),
                                client_host: m.client_host.to_string(),
                                assignment: m
                                    .assignment
                                    .topic_partitions
                                    .iter()
                                    .flat_map(|t| {
                                        t.partitions.iter().map(move |p| {
                                            TopicPartition::new(t.topic_name.0.to_string(), *p)
                                        })
                                    })
                                    .collect(),
                            })
                            .collect(),
                        coordinator: sent.node,
                        authorized_operations: authorized_operations(d.authorized_operations),
                    }),
                };
                out.insert(g.to_owned(), v);
            }
            out.insert_missing(g.to_owned());
        }
        Ok(out)
    }

    /// Deletes groups (they must be empty).
    pub async fn delete_groups(&self, group_ids: &[&str]) -> Result<ItemResults<String, ()>> {
        let mut out = ItemResults::new("delete groups");
        for &g in group_ids {
            let sent = self
                .call(
                    "delete groups",
                    Target::group(g),
                    |_| Ok(DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(g))])),
                    |r: &kafka_protocol::messages::DeleteGroupsResponse| {
                        r.results
                            .first()
                            .filter(|d| KafkaCode::from_i16(d.error_code).is_retriable())
                            .map_or((0, None), |d| (d.error_code, None))
                    },
                )
                .await?;
            for r in &sent.response.results {
                out.insert(
                    r.group_id.0.to_string(),
                    ItemError::from_code(r.error_code, None).map_or(Ok(()), Err),
                );
            }
            out.insert_missing(g.to_owned());
        }
        Ok(out)
    }

    /// The committed offsets of `group` (all partitions it has, or only `partitions`).
    /// Offsets still in a pending transaction are waited for (`require_stable`).
    pub async fn list_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>> {
        let topics = partitions.map(by_topic);
        let sent = self
            .call(
                "list group offsets",
                Target::group(group),
                |v| {
                    let mut r = OffsetFetchRequest::default();
                    if v >= 7 {
                        r.require_stable = true;
                    }
                    if v >= 8 {
                        r.groups = vec![OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(sb(group)))
                            .with_topics(topics.as_ref().map(|ts| {
                                ts.iter()
                                    .map(|(t, ps)| {
                                        OffsetFetchRequestTopics::default()
                                            .with_name(tn(t))
                                            .with_partition_indexes(ps.clone())
                                    })
                                    .collect()
                            }))];
                    } else {
                        r.group_id = GroupId(sb(group));
                        r.topics = topics.as_ref().map(|ts| {
                            ts.iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopic::default()
                                        .with_name(tn(t))
                                        .with_partition_indexes(ps.clone())
                                })
                                .collect()
                        });
                    }
                    Ok(r)
                },
                |r: &kafka_protocol::messages::OffsetFetchResponse| {
                    let code = r.groups.first().map_or(r.error_code, |g| g.error_code);
                    (code, None)
                },
            )
            .await?;
        let mut out = BTreeMap::new();
        let mut failures = Vec::new();
        let mut put = |t: &str, p: i32, off: i64, epoch: i32, meta: Option<String>, code: i16| {
            let tp = TopicPartition::new(t, p);
            if let Some(e) = ItemError::from_code(code, None) {
                failures.push((tp.to_string(), e));
            } else if off >= 0 {
                out.insert(
                    tp,
                    CommittedOffset {
                        offset: off,
                        leader_epoch: (epoch >= 0).then_some(epoch),
                        metadata: meta.filter(|m| !m.is_empty()),
                    },
                );
            }
        };
        if sent.version >= 8 {
            for g in &sent.response.groups {
                for t in &g.topics {
                    for p in &t.partitions {
                        put(
                            &t.name.0,
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata.as_ref().map(|m| m.to_string()),
                            p.error_code,
                        );
                    }
                }
            }
        } else {
            for t in &sent.response.topics {
                for p in &t.partitions {
                    put(
                        &t.name.0,
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.metadata.as_ref().map(|m| m.to_string()),
                        p.error_code,
                    );
                }
            }
        }
        if !failures.is_empty() {
            let total = failures.len() + out.len();
            return Err(AdminError::Partial {
                operation: "list group offsets",
                total,
                failures,
            });
        }
        Ok(out)
    }

    /// Sets committed offsets of `group` (the group must have no active member: the
    /// coordinator refuses with `UNKNOWN_MEMBER_ID` otherwise).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<ItemResults<TopicPartition, ()>> {
        let topics: BTreeMap<String, Vec<(i32, i64)>> =
            offsets.iter().fold(BTreeMap::new(), |mut m, (tp, o)| {
                m.entry(tp.topic.clone())
                    .or_insert_with(Vec::new)
                    .push((tp.partition, *o));
                m
            });
        if offsets.values().any(|o| *o < 0) {
            return Err(AdminError::invalid("committed offsets cannot be negative"));
        }
        let sent = self
            .call(
                "alter group offsets",
                Target::group(group),
                |_| {
                    Ok(OffsetCommitRequest::default()
                        .with_group_id(GroupId(sb(group)))
                        .with_generation_id_or_member_epoch(-1)
                        .with_member_id(sb(""))
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    OffsetCommitRequestTopic::default()
                                        .with_name(tn(t))
                                        .with_partitions(
                                            ps.iter()
                                                .map(|(p, o)| {
                                                    OffsetCommitRequestPartition::default()
                                                        .with_partition_index(*p)
                                                        .with_committed_offset(*o)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ))
                },
                |r: &kafka_protocol::messages::OffsetCommitResponse| {
                    // A moving coordinator shows in every partition: retry the whole call.
                    r.topics
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .map(|p| p.error_code)
                        .find(|c| {
                            KafkaCode::from_i16(*c).needs_coordinator_refresh()
                                || KafkaCode::from_i16(*c) == KafkaCode::CoordinatorLoadInProgress
                        })
                        .map_or((0, None), |c| (c, None))
                },
            )
            .await?;
        let mut out = ItemResults::new("alter group offsets");
        for t in &sent.response.topics {
            for p in &t.partitions {
                out.insert(
                    TopicPartition::new(t.name.0.to_string(), p.partition_index),
                    ItemError::from_code(p.error_code, None).map_or(Ok(()), Err),
                );
            }
        }
        for tp in offsets.keys() {
            out.insert_missing(tp.clone());
        }
        Ok(out)
    }

    /// Deletes committed offsets of `group` (refused for partitions the group consumes).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<ItemResults<TopicPartition, ()>> {
        let topics = by_topic(partitions);
        let sent = self
            .call(
                "delete group offsets",
                Target::group(group),
                |_| {
                    Ok(OffsetDeleteRequest::default()
                        .with_group_id(GroupId(sb(group)))
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    OffsetDeleteRequestTopic::default()
                                        .with_name(tn(t))
                                        .with_partitions(
                                            ps.iter()
                                                .map(|p| {
                                                    OffsetDeleteRequestPartition::default()
                                                        .with_partition_index(*p)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ))
                },
                |r: &kafka_protocol::messages::OffsetDeleteResponse| (r.error_code, None),
            )
            .await?;
        let mut out = ItemResults::new("delete group offsets");
        for t in &sent.response.topics {
            for p in &t.partitions {
                out.insert(
                    TopicPartition::new(t.name.0.to_string(), p.partition_index),
                    ItemError::from_code(p.error_code, None).map_or(Ok(()), Err),
                );
            }
        }
        for tp in partitions {
            out.insert_missing(tp.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_consumer_assignments_and_refuses_truncated_ones() {
        let mut b = vec![
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3,
        ];
        let a = parse_assignment(&b).unwrap();
        assert_eq!(
            a.into_iter().collect::<Vec<_>>(),
            [TopicPartition::new("t", 0), TopicPartition::new("t", 3)]
        );
        b.truncate(b.len() - 1);
        assert!(parse_assignment(&b).is_none());
        // A count that claims two billion partitions is refused without allocating.
        let huge = [0, 1, 0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff];
        assert!(parse_assignment(&huge).is_none());
        assert_eq!(parse_assignment(&[]).unwrap().len(), 0);
    }
}
