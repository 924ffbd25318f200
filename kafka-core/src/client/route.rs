//! Where a request goes (sans-IO): targets, workload classes, and routing against a metadata
//! snapshot.
//!
//! * Partition requests (Produce, Fetch, ListOffsets...) go to the partition's leader.
//! * Group and transaction requests go to the coordinator that FindCoordinator names
//!   (API key 10; batched `coordinator_keys` since v4, KIP-699).
//! * Cluster-wide admin requests (CreateTopics, DeleteTopics, ...) go to "the controller":
//!   in KRaft clusters brokers report a random broker as controller and forward the request
//!   to the active controller (KIP-590), so any broker works, but the reported one is used.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;

use crate::client::backoff::XorShift64;
use crate::client::error::{Error, ErrorContext};
use crate::client::metadata::ClusterMetadata;
use crate::kafka_error::KafkaCode;

/// Which coordinator a key belongs to (FindCoordinator `key_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CoordinatorKind {
    /// A consumer group (`key_type` 0): the key is the group id.
    Group,
    /// A transactional producer (`key_type` 1): the key is the transactional id.
    Transaction,
    /// A share group (`key_type` 2, KIP-932): the key is `group:topic id:partition`.
    Share,
}

impl CoordinatorKind {
    /// The FindCoordinator `key_type`.
    pub const fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
            CoordinatorKind::Share => 2,
        }
    }
}

/// Where to send a request ([`Client::send_to`](crate::client::Client::send_to)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// The broker of this node id.
    Broker(i32),
    /// Any broker (the client picks one at random among those known).
    AnyBroker,
    /// The controller as metadata reports it.
    Controller,
    /// The leader of a partition.
    LeaderOf(String, i32),
    /// The coordinator of a group or transactional id.
    Coordinator(CoordinatorKind, String),
}

impl Target {
    /// The leader of `topic`-`partition`.
    pub fn leader_of(topic: impl Into<String>, partition: i32) -> Self {
        Target::LeaderOf(topic.into(), partition)
    }

    /// The group coordinator of `group_id`.
    pub fn group(group_id: impl Into<String>) -> Self {
        Target::Coordinator(CoordinatorKind::Group, group_id.into())
    }

    /// The transaction coordinator of `transactional_id`.
    pub fn transaction(transactional_id: impl Into<String>) -> Self {
        Target::Coordinator(CoordinatorKind::Transaction, transactional_id.into())
    }

    pub(crate) fn context(&self) -> ErrorContext {
        match self {
            Target::Broker(id) => ErrorContext::new().broker(*id),
            Target::LeaderOf(t, p) => ErrorContext::new().partition(t.clone(), *p),
            Target::Coordinator(kind, key) => ErrorContext::new().coordinator(*kind, key.clone()),
            Target::AnyBroker | Target::Controller => ErrorContext::new(),
        }
    }
}

/// The workload classes that get their own connections to a broker, so that a long fetch
/// wait never delays a produce or a heartbeat (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ConnectionClass {
    /// Produce requests.
    Produce,
    /// Fetch and share-fetch requests (long polls).
    Fetch,
    /// Group membership, offsets and transactions (coordinator traffic).
    Group,
    /// Everything else: metadata, FindCoordinator, admin requests.
    Admin,
}

impl ConnectionClass {
    /// The class a request of `api_key` travels in by default.
    pub fn for_api(api_key: i16) -> Self {
        let Ok(key) = ApiKey::try_from(api_key) else {
            return ConnectionClass::Admin;
        };
        match key {
            ApiKey::Produce => ConnectionClass::Produce,
            ApiKey::Fetch | ApiKey::ShareFetch | ApiKey::ShareAcknowledge => ConnectionClass::Fetch,
            ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::ConsumerGroupHeartbeat
            | ApiKey::ShareGroupHeartbeat
            | ApiKey::InitProducerId
            | ApiKey::AddPartitionsToTxn
            | ApiKey::AddOffsetsToTxn
            | ApiKey::EndTxn
            | ApiKey::TxnOffsetCommit => ConnectionClass::Group,
            _ => ConnectionClass::Admin,
        }
    }
}

/// Cached coordinators: (kind, key) → node id.
#[derive(Debug, Clone, Default)]
pub struct CoordinatorCache {
    entries: HashMap<(CoordinatorKind, String), i32>,
}

impl CoordinatorCache {
    /// The cached coordinator of `key`.
    pub fn get(&self, kind: CoordinatorKind, key: &str) -> Option<i32> {
        // Allocation-free lookup would need a borrowed key type; keys are short.
        self.entries.get(&(kind, key.to_owned())).copied()
    }

    /// Remembers a coordinator.
    pub fn insert(&mut self, kind: CoordinatorKind, key: impl Into<String>, node_id: i32) {
        self.entries.insert((kind, key.into()), node_id);
    }

    /// Forgets a coordinator (after NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
    pub fn invalidate(&mut self, kind: CoordinatorKind, key: &str) -> bool {
        self.entries.remove(&(kind, key.to_owned())).is_some()
    }

    /// Forgets every coordinator hosted by `node_id` (the broker went away).
    pub fn invalidate_node(&mut self, node_id: i32) {
        self.entries.retain(|_, n| *n != node_id);
    }

    /// Number of cached coordinators.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The result of routing a target against the metadata at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Send to this node id.
    Node(i32),
    /// A coordinator must be looked up first (FindCoordinator).
    NeedCoordinator(CoordinatorKind, String),
    /// Metadata does not know enough yet (no snapshot, an unknown topic): refresh it first.
    NeedMetadata,
}

/// Routes `target` against a metadata snapshot and the coordinator cache.
///
/// `rng` picks among brokers for [`Target::AnyBroker`]. Errors are routing failures that a
/// refresh may cure (a leaderless partition) or that name a missing partition.
pub fn route(
    metadata: &ClusterMetadata,
    coordinators: &CoordinatorCache,
    target: &Target,
    rng: &mut XorShift64,
) -> Result<Route, Error> {
    match target {
        Target::Broker(id) => Ok(Route::Node(*id)),
        Target::AnyBroker => {
            let n = metadata.brokers().count();
            if n == 0 {
                return Ok(Route::NeedMetadata);
            }
            let pick = rng.below(n);
            Ok(Route::Node(
                metadata
                    .brokers()
                    .nth(pick)
                    .map(|b| b.node_id)
                    .unwrap_or(-1),
            ))
        }
        Target::Controller => match metadata.controller_id() {
            Some(id) => Ok(Route::Node(id)),
            None => Ok(Route::NeedMetadata),
        },
        Target::LeaderOf(topic, partition) => {
            let Some(t) = metadata.topic(topic) else {
                return Ok(Route::NeedMetadata);
            };
            let context = || ErrorContext::new().partition(topic.clone(), *partition);
            if t.partitions.is_empty() && !t.error.is_ok() {
                return Err(Error::Unroutable {
                    context: Box::new(context()),
                    reason: "topic has no partitions in metadata",
                    code: Some(t.error),
                });
            }
            let Some(p) = t.partition(*partition) else {
                return Err(Error::Unroutable {
                    context: Box::new(context()),
                    reason: "no such partition in metadata",
                    code: Some(KafkaCode::UnknownTopicOrPartition),
                });
            };
            match p.leader {
                Some(leader) => Ok(Route::Node(leader)),
                None => Err(Error::Unroutable {
                    context: Box::new(context()),
                    reason: "partition has no leader",
                    code: Some(if p.error.is_ok() {
                        KafkaCode::LeaderNotAvailable
                    } else {
                        p.error
                    }),
                }),
            }
        }
        Target::Coordinator(kind, key) => match coordinators.get(*kind, key) {
            Some(id) => Ok(Route::Node(id)),
            None => Ok(Route::NeedCoordinator(*kind, key.clone())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn snapshot() -> ClusterMetadata {
        let brokers = (1..=3)
            .map(|id| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_static_str("h"))
                    .with_port(9090 + id)
            })
            .collect();
        let part = |i, leader| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(1)
        };
        let t = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(vec![part(0, 2), part(1, -1)]);
        let mut gone = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("gone"))));
        gone.error_code = KafkaCode::UnknownTopicOrPartition.as_i16();
        ClusterMetadata::from_response(
            &MetadataResponse::default()
                .with_brokers(brokers)
                .with_controller_id(BrokerId(3))
                .with_topics(vec![t, gone]),
        )
    }

    #[test]
    fn routes_targets() {
        let m = snapshot();
        let mut c = CoordinatorCache::default();
        let mut rng = XorShift64::new(1);
        let mut r = |t: &Target, c: &CoordinatorCache| route(&m, c, t, &mut rng);
        assert_eq!(r(&Target::Broker(7), &c).unwrap(), Route::Node(7));
        assert_eq!(r(&Target::Controller, &c).unwrap(), Route::Node(3));
        assert_eq!(r(&Target::leader_of("t", 0), &c).unwrap(), Route::Node(2));
        assert_eq!(
            r(&Target::leader_of("unknown", 0), &c).unwrap(),
            Route::NeedMetadata
        );
        let e = r(&Target::leader_of("t", 1), &c).unwrap_err();
        assert_eq!(e.kafka_code(), Some(KafkaCode::LeaderNotAvailable));
        assert!(e.is_retriable() && e.needs_metadata_refresh());
        let e = r(&Target::leader_of("t", 5), &c).unwrap_err();
        assert_eq!(e.kafka_code(), Some(KafkaCode::UnknownTopicOrPartition));
        let e = r(&Target::leader_of("gone", 0), &c).unwrap_err();
        assert_eq!(e.kafka_code(), Some(KafkaCode::UnknownTopicOrPartition));
        assert_eq!(
            r(&Target::group("g"), &c).unwrap(),
            Route::NeedCoordinator(CoordinatorKind::Group, "g".into())
        );
        c.insert(CoordinatorKind::Group, "g", 1);
        assert_eq!(r(&Target::group("g"), &c).unwrap(), Route::Node(1));
        assert_eq!(
            r(&Target::transaction("g"), &c).unwrap(),
            Route::NeedCoordinator(CoordinatorKind::Transaction, "g".into()),
            "kinds are separate"
        );
        c.invalidate_node(1);
        assert!(c.is_empty());
    }

    #[test]
    fn any_broker_spreads_and_needs_metadata_when_empty() {
        let m = snapshot();
        let c = CoordinatorCache::default();
        let mut rng = XorShift64::new(9);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            match route(&m, &c, &Target::AnyBroker, &mut rng).unwrap() {
                Route::Node(n) => {
                    seen.insert(n);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        let empty = ClusterMetadata::default();
        assert_eq!(
            route(&empty, &c, &Target::AnyBroker, &mut rng).unwrap(),
            Route::NeedMetadata
        );
        assert_eq!(
            route(&empty, &c, &Target::Controller, &mut rng).unwrap(),
            Route::NeedMetadata
        );
    }

    #[test]
    fn classes_by_api() {
        use ConnectionClass::*;
        assert_eq!(ConnectionClass::for_api(ApiKey::Produce as i16), Produce);
        assert_eq!(ConnectionClass::for_api(ApiKey::Fetch as i16), Fetch);
        assert_eq!(ConnectionClass::for_api(ApiKey::Heartbeat as i16), Group);
        assert_eq!(ConnectionClass::for_api(ApiKey::EndTxn as i16), Group);
        assert_eq!(ConnectionClass::for_api(ApiKey::Metadata as i16), Admin);
        assert_eq!(ConnectionClass::for_api(ApiKey::CreateTopics as i16), Admin);
        assert_eq!(ConnectionClass::for_api(-5), Admin);
    }
}
