//! The cluster metadata cache (sans-IO): brokers, controller, topics, partition leaders.
//!
//! Built from `Metadata` responses (API key 3) of any version; fields a version lacks keep
//! their "unknown" value (`leader_epoch` before v7, `offline_replicas` before v5, topic ids
//! before v10, the cluster id before v2).
//!
//! Merge rule (KIP-320): a response may come from a broker that lags behind. For each
//! partition the leader epoch orders the information: a response whose leader epoch is
//! *lower* than the cached one does not replace the cached partition, unless the topic was
//! recreated (a different topic id, KIP-516). Epoch `-1` (unknown, old brokers) always
//! replaces, as nothing can be compared.
//!
//! [`MetadataCache`] adds the bookkeeping of refreshes: which topics are wanted, when the
//! snapshot was taken (`metadata.max.age.ms`), and whether an error marked it stale.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::kafka_error::KafkaCode;

/// A broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Rack (`broker.rack`), if configured.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, with IPv6 literals in brackets.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id; `None` when there is none (`-1`: election under way).
    pub leader: Option<i32>,
    /// The leader epoch (KIP-320); `None` when the broker did not say (before v7, or `-1`).
    pub leader_epoch: Option<i32>,
    /// All replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas that are offline (v5+).
    pub offline_replicas: Vec<i32>,
    /// The partition-level error (`LEADER_NOT_AVAILABLE`, say).
    pub error: KafkaCode,
}

/// A partition's leader and its epoch: what a produce or fetch is routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderAndEpoch {
    /// The leader's node id.
    pub leader: i32,
    /// The leader epoch, when known.
    pub leader_epoch: Option<i32>,
}

/// One topic as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// The topic id (KIP-516, v10+); `None` when nil or not sent.
    pub topic_id: Option<Uuid>,
    /// Whether this is an internal topic (`__consumer_offsets`, ...).
    pub is_internal: bool,
    /// The topic-level error (`UNKNOWN_TOPIC_OR_PARTITION` for a topic that does not exist).
    pub error: KafkaCode,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// The partition of that index.
    pub fn partition(&self, partition: i32) -> Option<&PartitionInfo> {
        self.partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
            .map(|i| &self.partitions[i])
    }
}

/// Which topics a metadata request asked about: this decides what a response may remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSelection {
    /// Every topic (a null topic list): topics missing from the response are gone.
    All,
    /// These topics only (possibly none: brokers and controller only). Other cached topics
    /// are kept as they are.
    Named(BTreeSet<String>),
}

impl TopicSelection {
    /// The `topics` field of a `MetadataRequest` for this selection.
    pub fn request(&self) -> MetadataRequest {
        let topics = match self {
            TopicSelection::All => None,
            TopicSelection::Named(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect(),
            ),
        };
        MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false)
    }
}

/// An immutable snapshot of what the client knows about the cluster.
///
/// Shared as `Arc<ClusterMetadata>`: readers never block a refresh, and a refresh builds a
/// new snapshot with [`ClusterMetadata::merge`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterMetadata {
    cluster_id: Option<String>,
    controller_id: Option<i32>,
    brokers: BTreeMap<i32, BrokerInfo>,
    topics: HashMap<String, TopicInfo>,
}

fn opt_id(id: i32) -> Option<i32> {
    (id >= 0).then_some(id)
}

fn topic_from_response(
    t: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> Option<TopicInfo> {
    let name = t.name.as_ref()?.0.to_string();
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: opt_id(p.leader_id.0),
            leader_epoch: opt_id(p.leader_epoch),
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
            error: KafkaCode::from_i16(p.error_code),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    partitions.dedup_by_key(|p| p.partition);
    Some(TopicInfo {
        name,
        topic_id: (!t.topic_id.is_nil()).then_some(t.topic_id),
        is_internal: t.is_internal,
        error: KafkaCode::from_i16(t.error_code),
        partitions,
    })
}

impl ClusterMetadata {
    /// A snapshot from one response, with nothing cached before.
    pub fn from_response(response: &MetadataResponse) -> Self {
        ClusterMetadata::default().merge(response, &TopicSelection::All)
    }

    /// A new snapshot: this one updated by `response`, which answered a request for
    /// `selection`.
    ///
    /// Brokers, controller and cluster id are replaced (every response carries all of them).
    /// Topics follow the KIP-320 rule of the module docs. A topic answered with
    /// `LEADER_NOT_AVAILABLE` and no partitions (a transient state) keeps the partitions
    /// already cached, so routing continues with the best knowledge; any other topic error
    /// (`UNKNOWN_TOPIC_OR_PARTITION` for a deleted topic) replaces them.
    pub fn merge(&self, response: &MetadataResponse, selection: &TopicSelection) -> Self {
        let brokers = response
            .brokers
            .iter()
            .filter_map(|b| {
                Some((
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: u16::try_from(b.port).ok()?,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    },
                ))
            })
            .collect();
        let mut topics = match selection {
            TopicSelection::All => HashMap::new(),
            TopicSelection::Named(_) => self.topics.clone(),
        };
        for t in &response.topics {
            let Some(mut new) = topic_from_response(t) else {
                continue;
            };
            if let Some(old) = self.topics.get(&new.name) {
                let recreated =
                    matches!((old.topic_id, new.topic_id), (Some(a), Some(b)) if a != b);
                if !recreated {
                    if new.partitions.is_empty() && new.error == KafkaCode::LeaderNotAvailable {
                        new.partitions = old.partitions.clone();
                    } else {
                        for p in &mut new.partitions {
                            if let Some(o) = old.partition(p.partition) {
                                if let (Some(old_epoch), Some(new_epoch)) =
                                    (o.leader_epoch, p.leader_epoch)
                                {
                                    if new_epoch < old_epoch {
                                        *p = o.clone();
                                    }
                                }
                            }
                        }
                    }
                    if new.topic_id.is_none() {
                        new.topic_id = old.topic_id;
                    }
                }
            }
            topics.insert(new.name.clone(), new);
        }
        ClusterMetadata {
            cluster_id: response.cluster_id.as_ref().map(|s| s.to_string()),
            controller_id: opt_id(response.controller_id.0),
            brokers,
            topics,
        }
    }

    /// The cluster id (v2+).
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The node id of the active controller, as brokers report it (in KRaft, a random
    /// broker: the broker forwards controller requests, KIP-590).
    pub fn controller_id(&self) -> Option<i32> {
        self.controller_id
    }

    /// All brokers, by node id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerInfo> + '_ {
        self.brokers.values()
    }

    /// One broker.
    pub fn broker(&self, node_id: i32) -> Option<&BrokerInfo> {
        self.brokers.get(&node_id)
    }

    /// All known topics (in no particular order).
    pub fn topics(&self) -> impl Iterator<Item = &TopicInfo> + '_ {
        self.topics.values()
    }

    /// One topic.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    /// The partitions of a topic, sorted by index; empty when the topic is unknown.
    pub fn partitions(&self, topic: &str) -> &[PartitionInfo] {
        self.topics
            .get(topic)
            .map(|t| t.partitions.as_slice())
            .unwrap_or(&[])
    }

    /// The leader (and leader epoch) of a partition, if it has one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<LeaderAndEpoch> {
        let p = self.topics.get(topic)?.partition(partition)?;
        Some(LeaderAndEpoch {
            leader: p.leader?,
            leader_epoch: p.leader_epoch,
        })
    }

    /// The broker that leads a partition, if it is known and listed among the brokers.
    pub fn leader_broker(&self, topic: &str, partition: i32) -> Option<&BrokerInfo> {
        self.broker(self.leader(topic, partition)?.leader)
    }
}

/// Refresh bookkeeping around [`ClusterMetadata`] snapshots (sans-IO: time is an argument).
#[derive(Debug, Clone)]
pub struct MetadataCache {
    snapshot: Arc<ClusterMetadata>,
    wanted: BTreeSet<String>,
    all_topics: bool,
    updated_at: Option<Instant>,
    max_age: Duration,
    stale: bool,
}

impl MetadataCache {
    /// An empty cache; `max_age` is `metadata.max.age.ms` (5 minutes by default).
    pub fn new(max_age: Duration) -> Self {
        MetadataCache {
            snapshot: Arc::default(),
            wanted: BTreeSet::new(),
            all_topics: false,
            updated_at: None,
            max_age,
            stale: true,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.snapshot)
    }

    /// When the snapshot was last refreshed.
    pub fn updated_at(&self) -> Option<Instant> {
        self.updated_at
    }

    /// Adds topics to the wanted set; returns whether any is new *and* not yet in the
    /// snapshot (then a refresh is due).
    pub fn want_topics<I, S>(&mut self, topics: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut missing = false;
        for t in topics {
            let t = t.into();
            if self.snapshot.topic(&t).is_none() {
                missing = true;
            }
            self.wanted.insert(t);
        }
        missing
    }

    /// Whether refreshes cover every topic of the cluster (an admin or regex consumer).
    pub fn want_all_topics(&mut self, all: bool) {
        self.all_topics = all;
    }

    /// Stops tracking a topic; it is dropped at the next full refresh.
    pub fn forget_topic(&mut self, topic: &str) {
        self.wanted.remove(topic);
    }

    /// The topics refreshes ask about.
    pub fn wanted(&self) -> &BTreeSet<String> {
        &self.wanted
    }

    /// What the next periodic refresh should ask for.
    pub fn selection(&self) -> TopicSelection {
        if self.all_topics {
            TopicSelection::All
        } else {
            TopicSelection::Named(self.wanted.clone())
        }
    }

    /// Marks the snapshot stale (an error said so): the next [`needs_refresh`] is true.
    ///
    /// [`needs_refresh`]: Self::needs_refresh
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Whether a refresh is due at `now`: never refreshed, marked stale, older than
    /// `metadata.max.age.ms`, or a wanted topic is missing.
    pub fn needs_refresh(&self, now: Instant) -> bool {
        match self.updated_at {
            None => true,
            Some(at) => {
                self.stale
                    || now.saturating_duration_since(at) >= self.max_age
                    || self.wanted.iter().any(|t| self.snapshot.topic(t).is_none())
            }
        }
    }

    /// Applies a response to a request for `selection`, received at `now`; returns the new
    /// snapshot.
    pub fn update(
        &mut self,
        response: &MetadataResponse,
        selection: &TopicSelection,
        now: Instant,
    ) -> Arc<ClusterMetadata> {
        self.snapshot = Arc::new(self.snapshot.merge(response, selection));
        // Only a refresh that covered every wanted topic resets the age: a narrow on-demand
        // request for one topic says nothing about the others.
        let covers_wanted = match selection {
            TopicSelection::All => true,
            TopicSelection::Named(names) => self.wanted.is_subset(names),
        };
        if covers_wanted || self.updated_at.is_none() {
            self.updated_at = Some(now);
            self.stale = false;
        }
        self.snapshot()
    }

    /// Forgets everything learned from brokers (KIP-1102 rebootstrap); wanted topics stay.
    pub fn reset(&mut self) {
        self.snapshot = Arc::default();
        self.updated_at = None;
        self.stale = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn broker(id: i32, port: i32) -> MetadataResponseBroker {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("localhost"))
            .with_port(port)
    }

    fn partition(index: i32, leader: i32, epoch: i32) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(epoch)
            .with_replica_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
            .with_isr_nodes(vec![BrokerId(leader)])
    }

    fn topic(
        name: &'static str,
        id: u128,
        parts: Vec<MetadataResponsePartition>,
    ) -> MetadataResponseTopic {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(name))))
            .with_topic_id(Uuid::from_u128(id))
            .with_partitions(parts)
    }

    fn response(controller: i32, topics: Vec<MetadataResponseTopic>) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![broker(1, 9092), broker(2, 9093), broker(3, 9094)])
            .with_cluster_id(Some(StrBytes::from_static_str("cluster-a")))
            .with_controller_id(BrokerId(controller))
            .with_topics(topics)
    }

    fn named(names: &[&str]) -> TopicSelection {
        TopicSelection::Named(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn snapshot_from_response() {
        let r = response(
            2,
            vec![topic("t", 1, vec![partition(1, 3, 5), partition(0, 2, 7)])],
        );
        let m = ClusterMetadata::from_response(&r);
        assert_eq!(m.cluster_id(), Some("cluster-a"));
        assert_eq!(m.controller_id(), Some(2));
        assert_eq!(m.brokers().count(), 3);
        assert_eq!(m.broker(2).unwrap().address(), "localhost:9093");
        let ps = m.partitions("t");
        assert_eq!(ps.iter().map(|p| p.partition).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(
            m.leader("t", 1),
            Some(LeaderAndEpoch {
                leader: 3,
                leader_epoch: Some(5)
            })
        );
        assert_eq!(m.leader_broker("t", 0).unwrap().port, 9093);
        assert_eq!(m.topic("t").unwrap().topic_id, Some(Uuid::from_u128(1)));
        assert!(m.leader("t", 9).is_none());
        assert!(m.partitions("nope").is_empty());
    }

    #[test]
    fn older_epoch_does_not_overwrite_newer() {
        let m = ClusterMetadata::from_response(&response(
            1,
            vec![topic("t", 1, vec![partition(0, 2, 7), partition(1, 3, 4)])],
        ));
        // A lagging broker answers: partition 0 with epoch 6 (older), partition 1 with 5.
        let lagging = response(
            1,
            vec![topic("t", 1, vec![partition(0, 1, 6), partition(1, 1, 5)])],
        );
        let m2 = m.merge(&lagging, &named(&["t"]));
        assert_eq!(m2.leader("t", 0).unwrap().leader, 2, "epoch 7 kept");
        assert_eq!(m2.leader("t", 0).unwrap().leader_epoch, Some(7));
        assert_eq!(m2.leader("t", 1).unwrap().leader, 1, "epoch 5 accepted");
        // Same epoch: the newer response wins (ISR changes do not bump the leader epoch).
        let same = response(1, vec![topic("t", 1, vec![partition(0, 2, 7)])]);
        let m3 = m2.merge(&same, &named(&["t"]));
        assert_eq!(m3.partitions("t").len(), 1);
    }

    #[test]
    fn recreated_topic_resets_epochs() {
        let m = ClusterMetadata::from_response(&response(
            1,
            vec![topic("t", 1, vec![partition(0, 2, 9)])],
        ));
        let recreated = response(1, vec![topic("t", 2, vec![partition(0, 3, 0)])]);
        let m2 = m.merge(&recreated, &named(&["t"]));
        assert_eq!(m2.leader("t", 0).unwrap().leader, 3);
        assert_eq!(m2.topic("t").unwrap().topic_id, Some(Uuid::from_u128(2)));
    }

    #[test]
    fn unknown_epoch_replaces() {
        let m = ClusterMetadata::from_response(&response(
            1,
            vec![topic("t", 1, vec![partition(0, 2, 9)])],
        ));
        let old_broker = response(1, vec![topic("t", 0, vec![partition(0, 3, -1)])]);
        let m2 = m.merge(&old_broker, &named(&["t"]));
        assert_eq!(m2.leader("t", 0).unwrap().leader, 3);
        assert_eq!(m2.leader("t", 0).unwrap().leader_epoch, None);
        // A nil topic id keeps the known one.
        assert_eq!(m2.topic("t").unwrap().topic_id, Some(Uuid::from_u128(1)));
    }

    #[test]
    fn selection_decides_what_is_dropped() {
        let m = ClusterMetadata::from_response(&response(
            1,
            vec![
                topic("a", 1, vec![partition(0, 1, 1)]),
                topic("b", 2, vec![partition(0, 1, 1)]),
            ],
        ));
        let only_a = response(1, vec![topic("a", 1, vec![partition(0, 2, 2)])]);
        let named_merge = m.merge(&only_a, &named(&["a"]));
        assert!(
            named_merge.topic("b").is_some(),
            "a named refresh keeps others"
        );
        let full_merge = m.merge(&only_a, &TopicSelection::All);
        assert!(
            full_merge.topic("b").is_none(),
            "a full refresh drops deleted topics"
        );
    }

    #[test]
    fn transient_topic_error_keeps_partitions() {
        let m = ClusterMetadata::from_response(&response(
            1,
            vec![topic("t", 1, vec![partition(0, 2, 3)])],
        ));
        let mut t = topic("t", 1, vec![]);
        t.error_code = KafkaCode::LeaderNotAvailable.as_i16();
        let m2 = m.merge(&response(1, vec![t]), &named(&["t"]));
        assert_eq!(m2.topic("t").unwrap().error, KafkaCode::LeaderNotAvailable);
        assert_eq!(m2.leader("t", 0).unwrap().leader, 2);
        // A topic that no longer exists: partitions go.
        let mut gone = topic("t", 1, vec![]);
        gone.error_code = KafkaCode::TopicAuthorizationFailed.as_i16();
        let m3 = m.merge(&response(1, vec![gone]), &named(&["t"]));
        assert!(m3.partitions("t").is_empty());
    }

    #[test]
    fn leaderless_partition_and_missing_controller() {
        let mut r = response(-1, vec![topic("t", 1, vec![partition(0, -1, 4)])]);
        r.topics[0].partitions[0].error_code = KafkaCode::LeaderNotAvailable.as_i16();
        let m = ClusterMetadata::from_response(&r);
        assert_eq!(m.controller_id(), None);
        assert!(m.leader("t", 0).is_none());
        assert_eq!(m.partitions("t")[0].error, KafkaCode::LeaderNotAvailable);
    }

    #[test]
    fn decodes_every_version() {
        let r = response(
            1,
            vec![topic(
                "t",
                1,
                vec![partition(0, 2, 7).with_offline_replicas(vec![BrokerId(3)])],
            )],
        );
        for version in 0..=13i16 {
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).unwrap();
            let decoded = MetadataResponse::decode(&mut buf.freeze(), version).unwrap();
            let m = ClusterMetadata::from_response(&decoded);
            assert_eq!(m.brokers().count(), 3, "v{version}");
            assert_eq!(m.leader("t", 0).unwrap().leader, 2, "v{version}");
            let epoch = m.leader("t", 0).unwrap().leader_epoch;
            assert_eq!(epoch, (version >= 7).then_some(7), "v{version}");
            let offline = &m.partitions("t")[0].offline_replicas;
            assert_eq!(offline.len(), usize::from(version >= 5), "v{version}");
            assert_eq!(m.cluster_id().is_some(), version >= 2, "v{version}");
            let id = m.topic("t").unwrap().topic_id;
            assert_eq!(id.is_some(), version >= 10, "v{version}");
        }
    }

    #[test]
    fn cache_refresh_bookkeeping() {
        let t0 = Instant::now();
        let mut c = MetadataCache::new(Duration::from_secs(300));
        assert!(c.needs_refresh(t0));
        assert!(c.want_topics(["t"]));
        let sel = c.selection();
        assert_eq!(sel, named(&["t"]));
        c.update(
            &response(1, vec![topic("t", 1, vec![partition(0, 1, 1)])]),
            &sel,
            t0,
        );
        assert!(!c.needs_refresh(t0 + Duration::from_secs(10)));
        assert!(c.needs_refresh(t0 + Duration::from_secs(300)), "max age");
        assert!(!c.want_topics(["t"]), "already known");
        c.mark_stale();
        assert!(c.needs_refresh(t0));
        c.update(
            &response(1, vec![topic("t", 1, vec![partition(0, 1, 1)])]),
            &sel,
            t0,
        );
        assert!(!c.needs_refresh(t0));
        assert!(c.want_topics(["u"]));
        assert!(c.needs_refresh(t0), "a wanted topic is missing");
        // A narrow refresh does not reset the age of the others.
        c.mark_stale();
        c.update(&response(1, vec![]), &named(&["u"]), t0);
        assert!(c.needs_refresh(t0));
        let req = c.selection().request();
        assert_eq!(req.topics.unwrap().len(), 2);
        c.want_all_topics(true);
        assert!(c.selection().request().topics.is_none());
        c.reset();
        assert!(c.snapshot().topic("t").is_none());
        assert!(c.needs_refresh(t0));
    }
}
