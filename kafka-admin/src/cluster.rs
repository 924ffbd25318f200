//! The cluster: describe cluster, features (describe, update), the KRaft quorum, log dirs
//! (describe, alter replica log dirs), partition reassignments (alter, cancel, list) and
//! leader elections (preferred, unclean).

use std::collections::{BTreeMap, BTreeSet};

use kafka_core::client::Target;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest, ApiVersionsRequest, BrokerId,
    DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest, DescribeQuorumRequest,
    DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, UpdateFeaturesRequest,
    UpdateFeaturesResponse,
};

use crate::acls::{authorized_operations, AclOperation};
use crate::admin::{by_topic, opt_msg, sb, tn, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result, TopicPartition};

/// A broker as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct BrokerDescription {
    /// Node id.
    pub id: i32,
    /// Host.
    pub host: String,
    /// Port.
    pub port: i32,
    /// Rack.
    pub rack: Option<String>,
    /// Fenced (v2+; fenced brokers are listed only then).
    pub fenced: bool,
}

/// The cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    /// Cluster id.
    pub cluster_id: String,
    /// The controller as brokers report it (a random broker in KRaft mode, KIP-590).
    pub controller: Option<i32>,
    /// Brokers by node id.
    pub brokers: Vec<BrokerDescription>,
    /// What the caller may do with the cluster.
    pub authorized_operations: Option<BTreeSet<AclOperation>>,
}

/// Version range of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    /// Lowest.
    pub min: i16,
    /// Highest.
    pub max: i16,
}

/// Feature flags (KIP-584): what brokers support and what the cluster has finalized.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeatureMetadata {
    /// Finalized features (`metadata.version`, `kraft.version`, `transaction.version`...).
    pub finalized: BTreeMap<String, VersionRange>,
    /// Epoch of the finalized set.
    pub finalized_epoch: Option<i64>,
    /// What the answering broker supports.
    pub supported: BTreeMap<String, VersionRange>,
}

/// How to change a feature's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeatureUpgradeType {
    /// Raise only.
    Upgrade,
    /// Lower without losing metadata.
    SafeDowngrade,
    /// Lower, possibly losing metadata.
    UnsafeDowngrade,
}

/// A feature update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureUpdate {
    /// The new maximum level (0 removes the feature).
    pub max_version_level: i16,
    /// How.
    pub upgrade_type: FeatureUpgradeType,
}

/// One replica of the KRaft quorum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct QuorumReplica {
    /// Node id.
    pub replica_id: i32,
    /// Its log end offset.
    pub log_end_offset: i64,
    /// When the leader last heard from it (ms; -1 unknown).
    pub last_fetch_timestamp: i64,
    /// When it was last caught up (ms; -1 unknown).
    pub last_caught_up_timestamp: i64,
}

/// The KRaft metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct QuorumInfo {
    /// The active controller.
    pub leader_id: i32,
    /// Its epoch.
    pub leader_epoch: i32,
    /// High watermark of the metadata log.
    pub high_watermark: i64,
    /// Voters.
    pub voters: Vec<QuorumReplica>,
    /// Observers (brokers that only follow).
    pub observers: Vec<QuorumReplica>,
}

/// One replica in a log dir.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaInfo {
    /// Size in bytes.
    pub size: i64,
    /// How far behind the log end (for a future replica, behind the current one).
    pub offset_lag: i64,
    /// Whether this is the future replica of an ongoing move between dirs.
    pub is_future: bool,
}

/// One log dir of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogDirDescription {
    /// Path.
    pub path: String,
    /// The dir's error (`KAFKA_STORAGE_ERROR` for an offline dir).
    pub error: Option<ItemError>,
    /// Total bytes of the volume (v4+).
    pub total_bytes: Option<i64>,
    /// Usable bytes of the volume (v4+).
    pub usable_bytes: Option<i64>,
    /// Replicas in this dir.
    pub replicas: BTreeMap<TopicPartition, ReplicaInfo>,
}

/// A replica on a broker (for log dir moves).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartitionReplica {
    /// The partition.
    pub partition: TopicPartition,
    /// The broker.
    pub broker: i32,
}

impl std::fmt::Display for TopicPartitionReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on broker {}", self.partition, self.broker)
    }
}

/// A reassignment under way.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OngoingReassignment {
    /// The replica set while moving (old and new).
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

/// Which leader to elect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The preferred (first) replica, if in sync.
    Preferred,
    /// Any live replica, even out of sync (may lose data).
    Unclean,
}

impl Admin {
    /// Describes the cluster: id, controller, brokers (fenced ones too, v2+), and the
    /// caller's authorized operations.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let sent = self
            .call(
                "describe cluster",
                Target::AnyBroker,
                |v| {
                    let mut r = DescribeClusterRequest::default()
                        .with_include_cluster_authorized_operations(true);
                    if v >= 2 {
                        r.include_fenced_brokers = true;
                    }
                    Ok(r)
                },
                |r: &DescribeClusterResponse| (r.error_code, opt_msg(&r.error_message)),
            )
            .await?;
        let r = sent.response;
        let mut brokers: Vec<BrokerDescription> = r
            .brokers
            .iter()
            .map(|b| BrokerDescription {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|s| s.to_string()),
                fenced: b.is_fenced,
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterDescription {
            cluster_id: r.cluster_id.to_string(),
            controller: (r.controller_id.0 >= 0).then_some(r.controller_id.0),
            brokers,
            authorized_operations: authorized_operations(r.cluster_authorized_operations),
        })
    }

    /// The cluster's feature flags (ApiVersions v3+).
    pub async fn describe_features(&self) -> Result<FeatureMetadata> {
        let sent = self
            .call(
                "describe features",
                Target::AnyBroker,
                |_| {
                    Ok(ApiVersionsRequest::default()
                        .with_client_software_name(sb("kafka-rs-admin"))
                        .with_client_software_version(sb(env!("CARGO_PKG_VERSION"))))
                },
                |r: &kafka_protocol::messages::ApiVersionsResponse| (r.error_code, None),
            )
            .await?;
        let r = sent.response;
        Ok(FeatureMetadata {
            finalized: r
                .finalized_features
                .iter()
                .map(|f| {
                    (
                        f.name.to_string(),
                        VersionRange {
                            min: f.min_version_level,
                            max: f.max_version_level,
                        },
                    )
                })
                .collect(),
            finalized_epoch: (r.finalized_features_epoch >= 0)
                .then_some(r.finalized_features_epoch),
            supported: r
                .supported_features
                .iter()
                .map(|f| {
                    (
                        f.name.to_string(),
                        VersionRange {
                            min: f.min_version,
                            max: f.max_version,
                        },
                    )
                })
                .collect(),
        })
    }

    /// Updates feature levels (`validate_only`: check only, v1+).
    pub async fn update_features(
        &self,
        updates: &BTreeMap<String, FeatureUpdate>,
        validate_only: bool,
    ) -> Result<ItemResults<String, ()>> {
        let timeout = self.op_timeout_ms();
        let sent = self
            .call(
                "update features",
                Target::Controller,
                |v| {
                    if validate_only && v < 1 {
                        return Err(AdminError::invalid(
                            "validate-only feature updates need UpdateFeatures v1",
                        ));
                    }
                    let keys = updates
                        .iter()
                        .map(|(name, u)| {
                            let mut k = FeatureUpdateKey::default()
                                .with_feature(sb(name))
                                .with_max_version_level(u.max_version_level);
                            if v == 0 {
                                k.allow_downgrade = u.upgrade_type != FeatureUpgradeType::Upgrade;
                            } else {
                                k.upgrade_type = match u.upgrade_type {
                                    FeatureUpgradeType::Upgrade => 1,
                                    FeatureUpgradeType::SafeDowngrade => 2,
                                    FeatureUpgradeType::UnsafeDowngrade => 3,
                                };
                            }
                            k
                        })
                        .collect();
                    let mut r = UpdateFeaturesRequest::default()
                        .with_timeout_ms(timeout)
                        .with_feature_updates(keys);
                    if v >= 1 {
                        r.validate_only = validate_only;
                    }
                    Ok(r)
                },
                |r: &UpdateFeaturesResponse| {
                    let c = kafka_core::KafkaCode::from_i16(r.error_code);
                    if c.is_retriable() {
                        (r.error_code, opt_msg(&r.error_message))
                    } else {
                        (0, None)
                    }
                },
            )
            .await?;
        let mut out = ItemResults::new("update features");
        let top = ItemError::from_code(
            sent.response.error_code,
            sent.response.error_message.as_deref(),
        );
        if sent.version >= 2 || top.is_some() {
            // v2 answers with one top-level outcome for every update.
            for name in updates.keys() {
                out.insert(name.clone(), top.clone().map_or(Ok(()), Err));
            }
            return Ok(out);
        }
        for r in &sent.response.results {
            out.insert(
                r.feature.to_string(),
                ItemError::from_code(r.error_code, r.error_message.as_deref()).map_or(Ok(()), Err),
            );
        }
        for name in updates.keys() {
            out.insert_missing(name.clone());
        }
        Ok(out)
    }

    /// Describes the KRaft metadata quorum (`__cluster_metadata`).
    pub async fn describe_quorum(&self) -> Result<QuorumInfo> {
        let sent = self
            .call(
                "describe quorum",
                Target::AnyBroker,
                |_| {
                    Ok(
                        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                            .with_topic_name(tn("__cluster_metadata"))
                            .with_partitions(vec![
                                PartitionData::default().with_partition_index(0)
                            ])]),
                    )
                },
                |r: &DescribeQuorumResponse| (r.error_code, opt_msg(&r.error_message)),
            )
            .await?;
        let p = sent
            .response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| AdminError::Plan {
                reason: "DescribeQuorum answered without the metadata partition".into(),
            })?;
        if let Some(e) = ItemError::from_code(p.error_code, p.error_message.as_deref()) {
            return Err(AdminError::Partial {
                operation: "describe quorum",
                total: 1,
                failures: vec![("__cluster_metadata-0".into(), e)],
            });
        }
        let rep =
            |r: &kafka_protocol::messages::describe_quorum_response::ReplicaState| QuorumReplica {
                replica_id: r.replica_id.0,
                log_end_offset: r.log_end_offset,
                last_fetch_timestamp: r.last_fetch_timestamp,
                last_caught_up_timestamp: r.last_caught_up_timestamp,
            };
        Ok(QuorumInfo {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: p.current_voters.iter().map(rep).collect(),
            observers: p.observers.iter().map(rep).collect(),
        })
    }

    /// Describes the log dirs of `brokers` (every broker when empty), with every replica.
    pub async fn describe_log_dirs(
        &self,
        brokers: &[i32],
    ) -> Result<ItemResults<i32, Vec<LogDirDescription>>> {
        let brokers = if brokers.is_empty() {
            self.broker_ids().await?
        } else {
            brokers.to_vec()
        };
        let mut out = ItemResults::new("describe log dirs");
        for b in brokers {
            let r = self
                .call(
                    "describe log dirs",
                    Target::Broker(b),
                    |_| Ok(DescribeLogDirsRequest::default().with_topics(None)),
                    |r: &kafka_protocol::messages::DescribeLogDirsResponse| (r.error_code, None),
                )
                .await;
            let sent = match r {
                Ok(s) => s,
                Err(e) => {
                    out.insert(
                        b,
                        Err(ItemError::new(
                            e.kafka_code()
                                .unwrap_or(kafka_core::KafkaCode::UnknownServerError),
                            Some(e.to_string()),
                        )),
                    );
                    continue;
                }
            };
            let dirs = sent
                .response
                .results
                .iter()
                .map(|d| LogDirDescription {
                    path: d.log_dir.to_string(),
                    error: ItemError::from_code(d.error_code, None),
                    total_bytes: (sent.version >= 4 && d.total_bytes >= 0).then_some(d.total_bytes),
                    usable_bytes: (sent.version >= 4 && d.usable_bytes >= 0)
                        .then_some(d.usable_bytes),
                    replicas: d
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(move |p| {
                                (
                                    TopicPartition::new(t.name.0.to_string(), p.partition_index),
                                    ReplicaInfo {
                                        size: p.partition_size,
                                        offset_lag: p.offset_lag,
                                        is_future: p.is_future_key,
                                    },
                                )
                            })
                        })
                        .collect(),
                })
                .collect();
            out.insert(b, Ok(dirs));
        }
        Ok(out)
    }

    /// Moves replicas between log dirs of their broker (each request goes to that broker).
    pub async fn alter_replica_log_dirs(
        &self,
        moves: &BTreeMap<TopicPartitionReplica, String>,
    ) -> Result<ItemResults<TopicPartitionReplica, ()>> {
        let mut per_broker: BTreeMap<i32, BTreeMap<String, Vec<TopicPartition>>> = BTreeMap::new();
        for (r, path) in moves {
            per_broker
                .entry(r.broker)
                .or_default()
                .entry(path.clone())
                .or_default()
                .push(r.partition.clone());
        }
        let mut out = ItemResults::new("alter replica log dirs");
        for (b, dirs) in per_broker {
            let sent = self
                .call(
                    "alter replica log dirs",
                    Target::Broker(b),
                    |_| {
                        Ok(AlterReplicaLogDirsRequest::default().with_dirs(
                            dirs.iter()
                                .map(|(path, tps)| {
                                    AlterReplicaLogDir::default()
                                        .with_path(sb(path))
                                        .with_topics(
                                            by_topic(tps)
                                                .into_iter()
                                                .map(|(t, ps)| {
                                                    AlterReplicaLogDirTopic::default()
                                                        .with_name(tn(&t))
                                                        .with_partitions(ps)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ))
                    },
                    |_| (0, None),
                )
                .await?;
            for t in &sent.response.results {
                for p in &t.partitions {
                    out.insert(
                        TopicPartitionReplica {
                            partition: TopicPartition::new(
                                t.topic_name.0.to_string(),
                                p.partition_index,
                            ),
                            broker: b,
                        },
                        ItemError::from_code(p.error_code, None).map_or(Ok(()), Err),
                    );
                }
            }
        }
        for r in moves.keys() {
            out.insert_missing(r.clone());
        }
        Ok(out)
    }

    /// Starts (`Some(replicas)`) or cancels (`None`) partition reassignments.
    pub async fn alter_partition_reassignments(
        &self,
        changes: &BTreeMap<TopicPartition, Option<Vec<i32>>>,
    ) -> Result<ItemResults<TopicPartition, ()>> {
        let timeout = self.op_timeout_ms();
        let mut topics: BTreeMap<String, Vec<ReassignablePartition>> = BTreeMap::new();
        for (tp, replicas) in changes {
            topics.entry(tp.topic.clone()).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(tp.partition)
                    .with_replicas(
                        replicas
                            .as_ref()
                            .map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                    ),
            );
        }
        let sent = self
            .call(
                "alter partition reassignments",
                Target::Controller,
                |v| {
                    let mut r = AlterPartitionReassignmentsRequest::default()
                        .with_timeout_ms(timeout)
                        .with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    ReassignableTopic::default()
                                        .with_name(tn(t))
                                        .with_partitions(ps.clone())
                                })
                                .collect(),
                        );
                    if v >= 1 {
                        r.allow_replication_factor_change = true;
                    }
                    Ok(r)
                },
                |r: &kafka_protocol::messages::AlterPartitionReassignmentsResponse| {
                    (r.error_code, opt_msg(&r.error_message))
                },
            )
            .await?;
        let mut out = ItemResults::new("alter partition reassignments");
        for t in &sent.response.responses {
            for p in &t.partitions {
                out.insert(
                    TopicPartition::new(t.name.0.to_string(), p.partition_index),
                    ItemError::from_code(p.error_code, p.error_message.as_deref())
                        .map_or(Ok(()), Err),
                );
            }
        }
        for tp in changes.keys() {
            out.insert_missing(tp.clone());
        }
        Ok(out)
    }

    /// The reassignments under way (of `partitions`, or all).
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, OngoingReassignment>> {
        let timeout = self.op_timeout_ms();
        let topics = partitions.map(by_topic);
        let sent = self
            .call(
                "list partition reassignments",
                Target::Controller,
                |_| {
                    Ok(ListPartitionReassignmentsRequest::default()
                        .with_timeout_ms(timeout)
                        .with_topics(topics.as_ref().map(|ts| {
                            ts.iter()
                                .map(|(t, ps)| {
                                    ListPartitionReassignmentsTopics::default()
                                        .with_name(tn(t))
                                        .with_partition_indexes(ps.clone())
                                })
                                .collect()
                        })))
                },
                |r: &ListPartitionReassignmentsResponse| (r.error_code, opt_msg(&r.error_message)),
            )
            .await?;
        let mut out = BTreeMap::new();
        for t in &sent.response.topics {
            for p in &t.partitions {
                out.insert(
                    TopicPartition::new(t.name.0.to_string(), p.partition_index),
                    OngoingReassignment {
                        replicas: p.replicas.iter().map(|b| b.0).collect(),
                        adding: p.adding_replicas.iter().map(|b| b.0).collect(),
                        removing: p.removing_replicas.iter().map(|b| b.0).collect(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Elects leaders for `partitions` (every partition when `None`; then only the
    /// partitions that needed an election are reported). `ELECTION_NOT_NEEDED` means the
    /// leader already is the one asked for.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<ItemResults<TopicPartition, ()>> {
        let timeout = self.op_timeout_ms();
        let topics = partitions.map(by_topic);
        let sent = self
            .call(
                "elect leaders",
                Target::Controller,
                |v| {
                    if v < 1 && election == ElectionType::Unclean {
                        return Err(AdminError::invalid(
                            "unclean elections need ElectLeaders v1",
                        ));
                    }
                    let mut r = ElectLeadersRequest::default()
                        .with_timeout_ms(timeout)
                        .with_topic_partitions(topics.as_ref().map(|ts| {
                            ts.iter()
                                .map(|(t, ps)| {
                                    TopicPartitions::default()
                                        .with_topic(tn(t))
                                        .with_partitions(ps.clone())
                                })
                                .collect()
                        }));
                    if v >= 1 {
                        r.election_type = match election {
                            ElectionType::Preferred => 0,
                            ElectionType::Unclean => 1,
                        };
                    }
                    Ok(r)
                },
                |r: &ElectLeadersResponse| (r.error_code, None),
            )
            .await?;
        let mut out = ItemResults::new("elect leaders");
        for t in &sent.response.replica_election_results {
            for p in &t.partition_result {
                out.insert(
                    TopicPartition::new(t.topic.0.to_string(), p.partition_id),
                    ItemError::from_code(p.error_code, p.error_message.as_deref())
                        .map_or(Ok(()), Err),
                );
            }
        }
        for tp in partitions.into_iter().flatten() {
            out.insert_missing(tp.clone());
        }
        Ok(out)
    }
}
