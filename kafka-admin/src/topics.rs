//! Topics: create (partitions and replication factor, or an explicit assignment; configs;
//! validate-only), delete (by name or id), list, describe (with authorized operations),
//! create partitions. Writes go to the controller; reads to any broker (Metadata).

use std::collections::{BTreeMap, BTreeSet};

use kafka_core::client::Target;
use kafka_core::KafkaCode;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest,
};
use uuid::Uuid;

use crate::acls::{authorized_operations, AclOperation};
use crate::admin::{sb, tn, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// Number of partitions (`None`: the broker's `num.partitions`). Ignored with an
    /// explicit assignment.
    pub partitions: Option<i32>,
    /// Replication factor (`None`: the broker's `default.replication.factor`).
    pub replication_factor: Option<i16>,
    /// Explicit replica assignment: partition → brokers, the first preferred leader.
    pub assignment: Option<BTreeMap<i32, Vec<i32>>>,
    /// Topic configs (`cleanup.policy`, `retention.ms`...).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic of `partitions` partitions, each with `replication_factor` replicas.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: Some(replication_factor),
            assignment: None,
            configs: BTreeMap::new(),
        }
    }

    /// A topic with the broker defaults for partitions and replication factor.
    pub fn with_defaults(name: impl Into<String>) -> Self {
        NewTopic {
            partitions: None,
            replication_factor: None,
            ..NewTopic::new(name, 1, 1)
        }
    }

    /// A topic with an explicit replica assignment (partition → brokers).
    pub fn with_assignment(name: impl Into<String>, assignment: BTreeMap<i32, Vec<i32>>) -> Self {
        NewTopic {
            partitions: None,
            replication_factor: None,
            assignment: Some(assignment),
            ..NewTopic::new(name, 1, 1)
        }
    }

    /// Adds a config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.name.is_empty() || self.name.len() > 249 {
            return Err("a topic name has 1 to 249 characters".into());
        }
        if self.name == "." || self.name == ".." {
            return Err("a topic name cannot be '.' or '..'".into());
        }
        if let Some(c) = self
            .name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "{c:?} is not allowed in a topic name (ASCII letters, digits, '.', '_', '-')"
            ));
        }
        if matches!(self.partitions, Some(p) if p <= 0) {
            return Err("the partition count must be positive".into());
        }
        if matches!(self.replication_factor, Some(r) if r <= 0) {
            return Err("the replication factor must be positive".into());
        }
        if let Some(a) = &self.assignment {
            if a.is_empty() {
                return Err("an explicit assignment needs at least one partition".into());
            }
            for (p, replicas) in a {
                let distinct: BTreeSet<_> = replicas.iter().collect();
                if replicas.is_empty() || distinct.len() != replicas.len() {
                    return Err(format!(
                        "partition {p}: replicas must be distinct and not empty"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What the broker reports for a created topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedTopic {
    /// The topic id (v7+).
    pub topic_id: Option<Uuid>,
    /// Partitions (v5+; -1 when not reported).
    pub partitions: i32,
    /// Replication factor (v5+; -1 when not reported).
    pub replication_factor: i16,
}

/// A topic as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicListing {
    /// Name.
    pub name: String,
    /// Topic id.
    pub topic_id: Option<Uuid>,
    /// Whether internal (`__consumer_offsets`...).
    pub internal: bool,
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PartitionDescription {
    /// Index.
    pub partition: i32,
    /// Leader node id (`None`: offline).
    pub leader: Option<i32>,
    /// Leader epoch.
    pub leader_epoch: Option<i32>,
    /// Replicas, the preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Offline replicas.
    pub offline_replicas: Vec<i32>,
}

/// A described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Topic id.
    pub topic_id: Option<Uuid>,
    /// Internal topic.
    pub internal: bool,
    /// Partitions by index.
    pub partitions: Vec<PartitionDescription>,
    /// What the caller may do with the topic (`None` when not reported).
    pub authorized_operations: Option<BTreeSet<AclOperation>>,
}

/// Partitions to add to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartitions {
    /// The new total number of partitions.
    pub total: i32,
    /// Replicas of each new partition, in order (`None`: the controller places them).
    pub assignment: Option<Vec<Vec<i32>>>,
}

impl NewPartitions {
    /// Grow to `total` partitions.
    pub fn increase_to(total: i32) -> Self {
        NewPartitions {
            total,
            assignment: None,
        }
    }
}

impl Admin {
    /// Creates topics. With `validate_only` the controller checks everything and creates
    /// nothing. One outcome per topic; bad names and counts fail client-side.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<ItemResults<String, CreatedTopic>> {
        let mut out = ItemResults::new("create topics");
        let mut wire = Vec::new();
        let mut seen = BTreeSet::new();
        for t in topics {
            if let Err(reason) = t.check() {
                out.insert(
                    t.name.clone(),
                    Err(ItemError::new(KafkaCode::InvalidRequest, Some(reason))),
                );
                continue;
            }
            if !seen.insert(t.name.clone()) {
                return Err(AdminError::invalid(format!(
                    "topic {} is named twice",
                    t.name
                )));
            }
            wire.push(
                CreatableTopic::default()
                    .with_name(tn(&t.name))
                    .with_num_partitions(if t.assignment.is_some() {
                        -1
                    } else {
                        t.partitions.unwrap_or(-1)
                    })
                    .with_replication_factor(if t.assignment.is_some() {
                        -1
                    } else {
                        t.replication_factor.unwrap_or(-1)
                    })
                    .with_assignments(
                        t.assignment
                            .iter()
                            .flatten()
                            .map(|(p, replicas)| {
                                CreatableReplicaAssignment::default()
                                    .with_partition_index(*p)
                                    .with_broker_ids(
                                        replicas.iter().map(|b| BrokerId(*b)).collect(),
                                    )
                            })
                            .collect(),
                    )
                    .with_configs(
                        t.configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(sb(k))
                                    .with_value(Some(sb(v)))
                            })
                            .collect(),
                    ),
            );
        }
        if wire.is_empty() {
            return Ok(out);
        }
        let timeout = self.op_timeout_ms();
        let sent = self
            .call(
                "create topics",
                Target::Controller,
                |_| {
                    Ok(CreateTopicsRequest::default()
                        .with_topics(wire.clone())
                        .with_timeout_ms(timeout)
                        .with_validate_only(validate_only))
                },
                |_| (0, None),
            )
            .await?;
        for r in &sent.response.topics {
            let name = r.name.0.to_string();
            let v = match ItemError::from_code(r.error_code, r.error_message.as_deref()) {
                Some(e) => Err(e),
                None => Ok(CreatedTopic {
                    topic_id: (!r.topic_id.is_nil()).then_some(r.topic_id),
                    partitions: if sent.version >= 5 {
                        r.num_partitions
                    } else {
                        -1
                    },
                    replication_factor: if sent.version >= 5 {
                        r.replication_factor
                    } else {
                        -1
                    },
                }),
            };
            out.insert(name, v);
        }
        for t in &wire {
            out.insert_missing(t.name.0.to_string());
        }
        Ok(out)
    }

    /// Deletes topics by name.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<ItemResults<String, ()>> {
        let timeout = self.op_timeout_ms();
        let sent = self
            .call(
                "delete topics",
                Target::Controller,
                |v| {
                    let mut r = DeleteTopicsRequest::default().with_timeout_ms(timeout);
                    if v >= 6 {
                        r.topics = names
                            .iter()
                            .map(|n| DeleteTopicState::default().with_name(Some(tn(n))))
                            .collect();
                    } else {
                        r.topic_names = names.iter().map(|n| tn(n)).collect();
                    }
                    Ok(r)
                },
                |_| (0, None),
            )
            .await?;
        let mut out = ItemResults::new("delete topics");
        for r in &sent.response.responses {
            let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            out.insert(
                name,
                ItemError::from_code(r.error_code, r.error_message.as_deref()).map_or(Ok(()), Err),
            );
        }
        for n in names {
            out.insert_missing((*n).to_owned());
        }
        Ok(out)
    }

    /// Deletes topics by topic id (DeleteTopics v6+, Kafka 2.8+).
    pub async fn delete_topics_by_id(&self, ids: &[Uuid]) -> Result<ItemResults<Uuid, ()>> {
        let timeout = self.op_timeout_ms();
        let sent = self
            .call(
                "delete topics",
                Target::Controller,
                |v| {
                    if v < 6 {
                        return Err(AdminError::invalid(
                            "deleting topics by id needs DeleteTopics v6 (Kafka 2.8+)",
                        ));
                    }
                    Ok(DeleteTopicsRequest::default()
                        .with_timeout_ms(timeout)
                        .with_topics(
                            ids.iter()
                                .map(|id| DeleteTopicState::default().with_topic_id(*id))
                                .collect(),
                        ))
                },
                |_| (0, None),
            )
            .await?;
        let mut out = ItemResults::new("delete topics");
        for r in &sent.response.responses {
            out.insert(
                r.topic_id,
                ItemError::from_code(r.error_code, r.error_message.as_deref()).map_or(Ok(()), Err),
            );
        }
        for id in ids {
            out.insert_missing(*id);
        }
        Ok(out)
    }

    async fn metadata_for(
        &self,
        topics: Option<&[&str]>,
        authorized_ops: bool,
    ) -> Result<kafka_protocol::messages::MetadataResponse> {
        let sent = self
            .call(
                "metadata",
                Target::AnyBroker,
                |v| {
                    let mut r = MetadataRequest::default().with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|t| MetadataRequestTopic::default().with_name(Some(tn(t))))
                            .collect()
                    }));
                    if v >= 4 {
                        r.allow_auto_topic_creation = false;
                    }
                    if v >= 8 && authorized_ops {
                        r.include_topic_authorized_operations = true;
                    }
                    Ok(r)
                },
                |r: &kafka_protocol::messages::MetadataResponse| {
                    // A topic just created may have no leader yet: ask again.
                    r.topics
                        .iter()
                        .map(|t| t.error_code)
                        .find(|c| KafkaCode::from_i16(*c) == KafkaCode::LeaderNotAvailable)
                        .map_or((0, None), |c| (c, None))
                },
            )
            .await?;
        Ok(sent.response)
    }

    /// Every topic (internal ones when `include_internal`), sorted by name.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicListing>> {
        let resp = self.metadata_for(None, false).await?;
        let mut out: Vec<TopicListing> = resp
            .topics
            .iter()
            .filter(|t| include_internal || !t.is_internal)
            .filter_map(|t| {
                Some(TopicListing {
                    name: t.name.as_ref()?.0.to_string(),
                    topic_id: (!t.topic_id.is_nil()).then_some(t.topic_id),
                    internal: t.is_internal,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Describes topics: partitions, leaders, replicas, ISR, and the caller's authorized
    /// operations. An unknown topic is a per-item `UNKNOWN_TOPIC_OR_PARTITION`.
    pub async fn describe_topics(
        &self,
        names: &[&str],
    ) -> Result<ItemResults<String, TopicDescription>> {
        let mut out = ItemResults::new("describe topics");
        if names.is_empty() {
            return Ok(out);
        }
        let resp = self.metadata_for(Some(names), true).await?;
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if let Some(e) = ItemError::from_code(t.error_code, None) {
                out.insert(name, Err(e));
                continue;
            }
            let mut partitions: Vec<PartitionDescription> = t
                .partitions
                .iter()
                .map(|p| PartitionDescription {
                    partition: p.partition_index,
                    leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                    leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            out.insert(
                name.clone(),
                Ok(TopicDescription {
                    name,
                    topic_id: (!t.topic_id.is_nil()).then_some(t.topic_id),
                    internal: t.is_internal,
                    partitions,
                    authorized_operations: authorized_operations(t.topic_authorized_operations),
                }),
            );
        }
        for n in names {
            out.insert_missing((*n).to_owned());
        }
        Ok(out)
    }

    /// Adds partitions to topics (`validate_only`: check only).
    pub async fn create_partitions(
        &self,
        topics: &BTreeMap<String, NewPartitions>,
        validate_only: bool,
    ) -> Result<ItemResults<String, ()>> {
        let timeout = self.op_timeout_ms();
        let wire: Vec<CreatePartitionsTopic> = topics
            .iter()
            .map(|(name, np)| {
                CreatePartitionsTopic::default()
                    .with_name(tn(name))
                    .with_count(np.total)
                    .with_assignments(np.assignment.as_ref().map(|a| {
                        a.iter()
                            .map(|replicas| {
                                CreatePartitionsAssignment::default().with_broker_ids(
                                    replicas.iter().map(|b| BrokerId(*b)).collect(),
                                )
                            })
                            .collect()
                    }))
            })
            .collect();
        let sent = self
            .call(
                "create partitions",
                Target::Controller,
                |_| {
                    Ok(CreatePartitionsRequest::default()
                        .with_topics(wire.clone())
                        .with_timeout_ms(timeout)
                        .with_validate_only(validate_only))
                },
                |_| (0, None),
            )
            .await?;
        let mut out = ItemResults::new("create partitions");
        for r in &sent.response.results {
            out.insert(
                r.name.0.to_string(),
                ItemError::from_code(r.error_code, r.error_message.as_deref()).map_or(Ok(()), Err),
            );
        }
        for name in topics.keys() {
            out.insert_missing(name.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_topic_checks() {
        assert!(NewTopic::new("ok.topic_1-x", 1, 1).check().is_ok());
        assert!(NewTopic::new("", 1, 1).check().is_err());
        assert!(NewTopic::new("a b", 1, 1).check().is_err());
        assert!(NewTopic::new("t", 0, 1).check().is_err());
        assert!(NewTopic::new("t", 1, 0).check().is_err());
        let dup = BTreeMap::from([(0, vec![1, 1])]);
        assert!(NewTopic::with_assignment("t", dup).check().is_err());
    }
}
