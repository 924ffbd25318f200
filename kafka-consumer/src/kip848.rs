//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): one
//! ConsumerGroupHeartbeat RPC; the broker computes the assignment and hands it out
//! incrementally; the member reconciles (revoke first, then take the new partitions) and
//! reports what it owns in its next heartbeat.
//! <https://cwiki.apache.org/confluence/display/KAFKA/KIP-848>
//!
//! Heartbeats run in a background task (so a slow application keeps its membership until
//! `max.poll.interval.ms`); the poll reconciles. They share [`Shared`].

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_core::client::{
    Client, ConnectionClass, CoordinatorKind, Error as ClientError, ErrorContext, Target,
};
use kafka_core::KafkaCode;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ConsumerGroupHeartbeatRequest, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::ConsumerConfig;
use crate::error::{ConsumerError, Result};
use crate::group::{GroupEvent, LeaveFuture};
use crate::offsets::Committer;
use crate::TopicPartition;

/// Epoch sent to leave (dynamic members).
const LEAVE_EPOCH: i32 = -1;
/// Epoch sent to leave for a static member (its partitions wait for it).
const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Debug)]
struct Shared {
    member_id: String,
    epoch: i32,
    /// The latest assignment from the broker not yet reconciled (topic id, partition).
    target: Option<BTreeSet<(Uuid, i32)>>,
    /// What the member owns (reported in heartbeats).
    owned: BTreeSet<(Uuid, i32)>,
    topics: Vec<String>,
    lost: Option<KafkaCode>,
    fatal: Option<ConsumerError>,
    last_poll: Instant,
    stop: bool,
    joined: bool,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random member id (KIP-848 v1: the client chooses it). Not a secret: only unique.
fn random_member_id() -> String {
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    Uuid::from_bytes(out).to_string()
}

/// A KIP-848 group member.
#[derive(Debug)]
pub struct ConsumerGroup {
    id: String,
    instance_id: Option<String>,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Topic ids learned from metadata, both ways.
    names: HashMap<Uuid, String>,
}

impl ConsumerGroup {
    /// A member that has not joined yet.
    pub fn new(id: String, config: &ConsumerConfig) -> Self {
        Self {
            id,
            instance_id: config.group_instance_id.clone(),
            shared: Arc::new(Mutex::new(Shared {
                member_id: random_member_id(),
                epoch: 0,
                target: None,
                owned: BTreeSet::new(),
                topics: Vec::new(),
                lost: None,
                fatal: None,
                last_poll: Instant::now(),
                stop: false,
                joined: false,
            })),
            wake: Arc::new(Notify::new()),
            task: None,
            names: HashMap::new(),
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the member has an epoch.
    pub fn is_member(&self) -> bool {
        lock(&self.shared).joined
    }

    /// (member id, member epoch).
    pub fn membership(&self) -> Option<(String, i32)> {
        let s = lock(&self.shared);
        s.joined.then(|| (s.member_id.clone(), s.epoch))
    }

    pub(crate) fn committer(&self) -> Committer {
        let s = lock(&self.shared);
        Committer {
            generation: if s.joined { s.epoch } else { -1 },
            member_id: if s.joined {
                s.member_id.clone()
            } else {
                String::new()
            },
            instance_id: self.instance_id.clone(),
        }
    }

    /// The application polled.
    pub fn note_poll(&self) {
        lock(&self.shared).last_poll = Instant::now();
    }

    /// Whether the poll must act now.
    pub fn needs_attention(&self) -> bool {
        let s = lock(&self.shared);
        s.target.is_some() || s.lost.is_some() || s.fatal.is_some() || self.task.is_none()
    }

    /// Stops heartbeating.
    pub fn stop_heartbeat(&mut self) {
        lock(&self.shared).stop = true;
        self.wake.notify_one();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Starts (or updates the subscription of) the membership and reconciles a new
    /// assignment, if one arrived.
    pub async fn ensure_active(
        &mut self,
        client: &Client,
        topics: &[String],
        owned: &[TopicPartition],
        config: &ConsumerConfig,
    ) -> Result<Vec<GroupEvent>> {
        {
            let mut s = lock(&self.shared);
            if s.topics != topics {
                s.topics = topics.to_vec();
                self.wake.notify_one();
            }
            if let Some(e) = s.fatal.take() {
                return Err(e);
            }
        }
        if self.task.is_none() {
            self.start(client, config);
        }
        let mut events = Vec::new();
        let (lost, target) = {
            let mut s = lock(&self.shared);
            (s.lost.take(), s.target.take())
        };
        if let Some(code) = lost {
            metrics::counter!("kafka_consumer_membership_lost_total").increment(1);
            tracing::warn!(group = %self.id, %code, "group membership lost; rejoining");
            if !owned.is_empty() {
                events.push(GroupEvent::Lost(owned.to_vec()));
            }
            return Ok(events);
        }
        let Some(target) = target else {
            return Ok(events);
        };
        // Names of the assigned topic ids.
        if target.iter().any(|(id, _)| !self.names.contains_key(id)) {
            let meta = client.refresh_metadata(topics).await?;
            for t in meta.topics() {
                if let Some(id) = t.topic_id {
                    self.names.insert(id, t.name.clone());
                }
            }
        }
        let mut resolved = BTreeSet::new();
        let mut unresolved = false;
        for (id, p) in &target {
            match self.names.get(id) {
                Some(n) => {
                    resolved.insert(TopicPartition::new(n, *p));
                }
                None => unresolved = true,
            }
        }
        if unresolved {
            // Metadata does not know the topic yet: try again on the next poll.
            lock(&self.shared).target.get_or_insert(target);
            return Ok(events);
        }
        let current: BTreeSet<TopicPartition> = owned.iter().cloned().collect();
        let revoked: Vec<TopicPartition> = current.difference(&resolved).cloned().collect();
        let added: Vec<TopicPartition> = resolved.difference(&current).cloned().collect();
        if !revoked.is_empty() {
            events.push(GroupEvent::Revoke(revoked));
        }
        metrics::counter!("kafka_consumer_rebalances_total").increment(1);
        tracing::info!(group = %self.id, partitions = resolved.len(), "assignment reconciled");
        events.push(GroupEvent::Assign(added));
        // Report the new ownership at once.
        lock(&self.shared).owned = target;
        self.wake.notify_one();
        Ok(events)
    }

    fn start(&mut self, client: &Client, config: &ConsumerConfig) {
        {
            let mut s = lock(&self.shared);
            s.stop = false;
        }
        let shared = Arc::clone(&self.shared);
        let wake = Arc::clone(&self.wake);
        let client = client.clone();
        let group = self.id.clone();
        let instance = self.instance_id.clone();
        let rack = config.client_rack.clone();
        let rebalance_timeout = config.max_poll_interval;
        self.task = Some(tokio::spawn(async move {
            heartbeat_loop(
                client,
                shared,
                wake,
                group,
                instance,
                rack,
                rebalance_timeout,
            )
            .await;
        }));
    }

    /// Stops heartbeating and gives the heartbeat that leaves the group (epoch -1; -2 for a
    /// static member, whose partitions then wait for it until the session times out), if
    /// the member joined.
    pub fn begin_leave(&mut self, client: &Client) -> Option<LeaveFuture> {
        self.stop_heartbeat();
        let member_id = {
            let mut s = lock(&self.shared);
            if !s.joined {
                return None;
            }
            s.joined = false;
            s.epoch = 0;
            s.owned.clear();
            s.member_id.clone()
        };
        let epoch = if self.instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.id.clone())))
            .with_member_id(StrBytes::from_string(member_id))
            .with_member_epoch(epoch)
            .with_instance_id(self.instance_id.clone().map(StrBytes::from_string));
        let (client, group) = (client.clone(), self.id.clone());
        Some(Box::pin(async move {
            if let Err(e) = client.send_to(Target::group(group), req).await {
                tracing::debug!(error = %e, "leave failed");
            }
        }))
    }
}

async fn heartbeat_loop(
    client: Client,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    group: String,
    instance: Option<String>,
    rack: Option<String>,
    rebalance_timeout: Duration,
) {
    let mut interval = Duration::from_secs(3);
    let mut backoff = kafka_core::client::Backoff::new(client.config().retry_backoff);
    loop {
        let (member_id, epoch, topics, owned, last_poll, stop) = {
            let s = lock(&shared);
            (
                s.member_id.clone(),
                s.epoch,
                s.topics.clone(),
                s.owned.clone(),
                s.last_poll,
                s.stop,
            )
        };
        if stop {
            return;
        }
        if epoch > 0 && last_poll.elapsed() > rebalance_timeout {
            metrics::counter!("kafka_consumer_poll_timeouts_total").increment(1);
            tracing::warn!(group = %group, "max.poll.interval.ms exceeded: leaving the group");
            let req = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_member_epoch(if instance.is_some() {
                    STATIC_LEAVE_EPOCH
                } else {
                    LEAVE_EPOCH
                })
                .with_instance_id(instance.clone().map(StrBytes::from_string));
            let _ = client.send_to(Target::group(group.clone()), req).await;
            {
                let mut s = lock(&shared);
                s.lost = Some(KafkaCode::UnknownMemberId);
                s.epoch = 0;
                s.joined = false;
                s.owned.clear();
            }
            // Wait for the application to come back before rejoining.
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let s = lock(&shared);
                if s.stop {
                    return;
                }
                if s.last_poll.elapsed() < rebalance_timeout {
                    break;
                }
            }
            continue;
        }
        if topics.is_empty() && epoch == 0 {
            wake.notified().await;
            continue;
        }
        let mut by_topic: HashMap<Uuid, Vec<i32>> = HashMap::new();
        for (id, p) in &owned {
            by_topic.entry(*id).or_default().push(*p);
        }
        let result = async {
            let (node, conn) = client
                .connection(&Target::group(group.clone()), ConnectionClass::Group)
                .await?;
            let version = conn
                .max_version(ApiKey::ConsumerGroupHeartbeat as i16)
                .unwrap_or(0);
            let req = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_member_id(StrBytes::from_string(if version == 0 && epoch == 0 {
                    String::new()
                } else {
                    member_id.clone()
                }))
                .with_member_epoch(epoch)
                .with_instance_id(instance.clone().map(StrBytes::from_string))
                .with_rack_id(rack.clone().map(StrBytes::from_string))
                .with_rebalance_timeout_ms(rebalance_timeout.as_millis() as i32)
                .with_subscribed_topic_names(Some(
                    topics
                        .iter()
                        .map(|t| TopicName(StrBytes::from_string(t.clone())))
                        .collect(),
                ))
                .with_topic_partitions(Some(
                    by_topic
                        .into_iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                ));
            conn.send_at(req, version).await.map_err(|e| {
                ClientError::net(
                    e,
                    ErrorContext::new()
                        .broker(node)
                        .api("ConsumerGroupHeartbeat")
                        .coordinator(CoordinatorKind::Group, group.clone()),
                )
            })
        }
        .await;
        match result {
            Ok(resp) => match KafkaCode::from_i16(resp.error_code) {
                KafkaCode::None => {
                    backoff = kafka_core::client::Backoff::new(client.config().retry_backoff);
                    let mut s = lock(&shared);
                    if let Some(id) = &resp.member_id {
                        s.member_id = id.to_string();
                    }
                    s.epoch = resp.member_epoch;
                    s.joined = true;
                    if resp.heartbeat_interval_ms > 0 {
                        interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
                    }
                    if let Some(a) = resp.assignment {
                        let target: BTreeSet<(Uuid, i32)> = a
                            .topic_partitions
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                            .collect();
                        s.target = Some(target);
                    }
                }
                c @ (KafkaCode::FencedMemberEpoch | KafkaCode::UnknownMemberId) => {
                    // Give everything up and join again with epoch 0 (same member id).
                    let mut s = lock(&shared);
                    s.lost = Some(c);
                    s.epoch = 0;
                    s.joined = false;
                    s.owned.clear();
                    s.target = None;
                    continue;
                }
                KafkaCode::UnsupportedVersion if epoch == 0 => {
                    // Kafka 3.x lists ConsumerGroupHeartbeat (the KIP-848 preview) but
                    // refuses it unless the new protocol is enabled on the brokers.
                    lock(&shared).fatal = Some(ConsumerError::GroupProtocolUnsupported);
                    return;
                }
                c @ (KafkaCode::UnsupportedVersion
                | KafkaCode::UnsupportedAssignor
                | KafkaCode::UnreleasedInstanceId
                | KafkaCode::FencedInstanceId
                | KafkaCode::GroupIdNotFound
                | KafkaCode::InvalidRequest
                | KafkaCode::GroupAuthorizationFailed
                | KafkaCode::TopicAuthorizationFailed
                | KafkaCode::GroupMaxSizeReached) => {
                    let mut s = lock(&shared);
                    s.fatal = Some(ConsumerError::Group {
                        group: group.clone(),
                        what: "consumer group heartbeat",
                        code: c,
                    });
                    return;
                }
                c => {
                    if c.needs_coordinator_refresh() {
                        client.invalidate_coordinator(CoordinatorKind::Group, &group);
                    }
                    tracing::debug!(code = %c, msg = ?resp.error_message, "consumer group heartbeat error");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            },
            Err(e) => {
                client.report(&e);
                client.invalidate_coordinator(CoordinatorKind::Group, &group);
                tracing::debug!(error = %e, "consumer group heartbeat failed");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        }
        // Next heartbeat after the interval, or at once when the poll reconciled or the
        // subscription changed.
        let _ = tokio::time::timeout(interval, wake.notified()).await;
    }
}
