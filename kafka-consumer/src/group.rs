//! Classic consumer-group membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.
//!
//! Joining and syncing run inside the consumer's poll (they change the assignment, which
//! the poll owns); heartbeats run in a background task so that a slow application does not
//! lose its membership before `max.poll.interval.ms`. The task and the poll share a small
//! state: the task flags "rejoin" (REBALANCE_IN_PROGRESS) or "lost" (fenced, unknown member,
//! poll interval exceeded); the poll acts on the flags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_core::client::{
    Client, ConnectionClass, CoordinatorKind, Error as ClientError, ErrorContext, Target,
};
use kafka_core::KafkaCode;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use tracing::Instrument;

use crate::assignor::{self, Assignment, Member, StickyUserData, Subscription};
use crate::config::{AssignorKind, ConsumerConfig, GroupProtocol};
use crate::error::{ConsumerError, Result};
use crate::kip848::ConsumerGroup;
use crate::offsets::Committer;
use crate::TopicPartition;

/// What a rebalance does to the consumer's assignment, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// Give these up (commit first).
    Revoke(Vec<TopicPartition>),
    /// These are gone already (no commit possible).
    Lost(Vec<TopicPartition>),
    /// Take these.
    Assign(Vec<TopicPartition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Stable,
    Rejoin,
    Lost(KafkaCode),
}

#[derive(Debug)]
struct Shared {
    generation: i32,
    member_id: String,
    health: Health,
    last_poll: Instant,
    stop: bool,
}

/// One classic group membership.
#[derive(Debug)]
pub struct ClassicGroup {
    id: String,
    instance_id: Option<String>,
    assignors: Vec<AssignorKind>,
    protocol: Option<AssignorKind>,
    shared: Arc<Mutex<Shared>>,
    joined: bool,
    rejoin_reason: Option<String>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    rack: Option<String>,
    /// The join running in the background.
    pending: Option<tokio::task::JoinHandle<JoinResult>>,
    /// A join decided on, started once the consumer has handled the revocations (so that
    /// commits of revoked partitions still carry the current generation).
    prepared: Option<(Vec<TopicPartition>, String)>,
    /// The last assignment received and its generation: the eager sticky assignor's user
    /// data (it is kept when the membership is lost, as Java keeps it: a claim of an old
    /// generation loses to newer ones at the leader).
    last_assignment: Option<StickyUserData>,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn gid(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_owned()))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl ClassicGroup {
    /// A group member that has not joined yet.
    pub fn new(id: String, config: &ConsumerConfig) -> Self {
        Self {
            id,
            instance_id: config.group_instance_id.clone(),
            assignors: config.assignors.clone(),
            protocol: None,
            shared: Arc::new(Mutex::new(Shared {
                generation: -1,
                member_id: String::new(),
                health: Health::Rejoin,
                last_poll: Instant::now(),
                stop: false,
            })),
            joined: false,
            rejoin_reason: Some("initial join".into()),
            heartbeat: None,
            rack: config.client_rack.clone(),
            pending: None,
            prepared: None,
            last_assignment: None,
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the member joined (has a member id and generation).
    pub fn is_member(&self) -> bool {
        self.joined
    }

    /// (member id, generation) while a member.
    pub fn membership(&self) -> Option<(String, i32)> {
        let s = lock(&self.shared);
        self.joined.then(|| (s.member_id.clone(), s.generation))
    }

    /// Who commits.
    pub(crate) fn committer(&self) -> Committer {
        let s = lock(&self.shared);
        Committer {
            generation: if self.joined { s.generation } else { -1 },
            member_id: if self.joined {
                s.member_id.clone()
            } else {
                String::new()
            },
            instance_id: self.instance_id.clone(),
        }
    }

    /// Asks for a rejoin on the next poll.
    pub fn request_rejoin(&mut self, reason: &str) {
        self.rejoin_reason = Some(reason.to_owned());
    }

    /// The application polled (liveness for `max.poll.interval.ms`).
    pub fn note_poll(&self) {
        lock(&self.shared).last_poll = Instant::now();
    }

    /// Whether the poll must act now (rejoin, lost membership).
    pub fn needs_attention(&self) -> bool {
        self.pending.is_some()
            || self.prepared.is_some()
            || self.rejoin_reason.is_some()
            || !self.joined
            || lock(&self.shared).health != Health::Stable
    }

    /// When the poll should look at the group again.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        if self.pending.is_some() {
            now + Duration::from_millis(50)
        } else {
            now + Duration::from_millis(500)
        }
    }

    /// Stops heartbeating and abandons a join in progress.
    pub fn shutdown(&mut self) {
        self.stop_heartbeat();
        self.prepared = None;
        if let Some(p) = self.pending.take() {
            p.abort();
        }
    }

    /// Stops the heartbeat task.
    pub fn stop_heartbeat(&mut self) {
        lock(&self.shared).stop = true;
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// Makes sure the member is in the group with a current assignment; returns what
    /// changed. A join is not awaited here: it is prepared (the revocations come back
    /// first), started by [`start_prepared`](Self::start_prepared) with the subscribed
    /// topics, and its outcome collected by a later call.
    pub async fn ensure_active(
        &mut self,
        client: &Client,
        _topics: &[String],
        owned: &[TopicPartition],
        config: &ConsumerConfig,
    ) -> Result<Vec<GroupEvent>> {
        if self.prepared.is_some() {
            return Ok(Vec::new());
        }
        if let Some(p) = &self.pending {
            if !p.is_finished() {
                return Ok(Vec::new());
            }
            let p = self.pending.take().expect("pending");
            let result = p.await.map_err(|e| ConsumerError::Group {
                group: self.id.clone(),
                what: if e.is_panic() {
                    "join (task panicked)"
                } else {
                    "join (task cancelled)"
                },
                code: KafkaCode::UnknownServerError,
            })?;
            let (assigned, protocol) = result?;
            self.protocol = protocol;
            return Ok(self.joined_with(assigned, owned, client, config));
        }
        let health = lock(&self.shared).health;
        let mut events = Vec::new();
        let mut owned: Vec<TopicPartition> = owned.to_vec();
        match health {
            Health::Stable if self.rejoin_reason.is_none() && self.joined => return Ok(events),
            Health::Lost(code) => {
                tracing::warn!(group = %self.id, %code, "group membership lost");
                metrics::counter!("kafka_consumer_membership_lost_total").increment(1);
                if !owned.is_empty() {
                    events.push(GroupEvent::Lost(std::mem::take(&mut owned)));
                }
                let mut s = lock(&self.shared);
                s.generation = -1;
                if code != KafkaCode::FencedInstanceId {
                    s.member_id.clear();
                }
                drop(s);
                self.joined = false;
                if code == KafkaCode::FencedInstanceId {
                    self.stop_heartbeat();
                    return Err(ConsumerError::MembershipLost {
                        group: self.id.clone(),
                        code,
                    });
                }
            }
            _ => {}
        }
        self.stop_heartbeat();
        lock(&self.shared).stop = false;
        let reason = self
            .rejoin_reason
            .take()
            .unwrap_or_else(|| "rebalance in progress".into());
        let cooperative = self.protocol.is_some_and(AssignorKind::is_cooperative);
        if !cooperative && !owned.is_empty() {
            // Eager protocols give everything up before joining.
            events.push(GroupEvent::Revoke(std::mem::take(&mut owned)));
        }
        metrics::counter!("kafka_consumer_rebalances_total").increment(1);
        self.prepared = Some((owned, reason));
        Ok(events)
    }

    /// Starts the join decided by [`ensure_active`](Self::ensure_active), after the
    /// consumer handled the events it returned.
    pub fn start_prepared(&mut self, client: &Client, topics: &[String], config: &ConsumerConfig) {
        let Some((owned, reason)) = self.prepared.take() else {
            return;
        };
        let mut joiner = Joiner {
            id: self.id.clone(),
            instance_id: self.instance_id.clone(),
            assignors: self.assignors.clone(),
            protocol: self.protocol,
            shared: Arc::clone(&self.shared),
            rack: self.rack.clone(),
            last_assignment: self.last_assignment.clone(),
        };
        let (client, topics, config) = (client.clone(), topics.to_vec(), config.clone());
        let span = tracing::info_span!("kafka_consumer_rebalance", group = %self.id);
        self.pending = Some(tokio::spawn(
            async move {
                let r = joiner
                    .join_and_sync(&client, &topics, &owned, &config, &reason)
                    .await;
                r.map(|a| (a, joiner.protocol))
            }
            .instrument(span),
        ));
    }

    /// The join finished with `assigned`: what changes for a consumer owning `owned`.
    fn joined_with(
        &mut self,
        assigned: Vec<TopicPartition>,
        owned: &[TopicPartition],
        client: &Client,
        config: &ConsumerConfig,
    ) -> Vec<GroupEvent> {
        let cooperative = self.protocol.is_some_and(AssignorKind::is_cooperative);
        self.joined = true;
        self.last_assignment = Some(StickyUserData {
            partitions: assigned.clone(),
            generation: Some(lock(&self.shared).generation),
        });
        let mut events = Vec::new();
        let now_owned: BTreeSet<&TopicPartition> = owned.iter().collect();
        let new: BTreeSet<&TopicPartition> = assigned.iter().collect();
        let revoked: Vec<TopicPartition> =
            now_owned.difference(&new).map(|t| (*t).clone()).collect();
        let added: Vec<TopicPartition> = new.difference(&now_owned).map(|t| (*t).clone()).collect();
        if !revoked.is_empty() {
            events.push(GroupEvent::Revoke(revoked));
            if cooperative {
                // Second phase: the revoked partitions can now go to their new owners.
                self.rejoin_reason = Some("cooperative: partitions revoked".into());
            }
        }
        events.push(GroupEvent::Assign(added));
        lock(&self.shared).health = Health::Stable;
        self.start_heartbeat(client, config);
        events
    }

    fn start_heartbeat(&mut self, client: &Client, config: &ConsumerConfig) {
        let shared = Arc::clone(&self.shared);
        let client = client.clone();
        let group = self.id.clone();
        let instance = self.instance_id.clone();
        let interval = config.heartbeat_interval;
        let max_poll = config.max_poll_interval;
        let session_timeout = config.session_timeout;
        self.heartbeat = Some(tokio::spawn(async move {
            heartbeat_loop(
                client,
                shared,
                group,
                instance,
                interval,
                max_poll,
                session_timeout,
            )
            .await;
        }));
    }

    /// Stops the membership and gives the LeaveGroup to send, if any: a dynamic member with
    /// a member id leaves (also during its first join, once MEMBER_ID_REQUIRED gave it one:
    /// the coordinator counts on it from then on); a static member just stops heartbeating,
    /// so its partitions wait for it until `session.timeout.ms`.
    pub fn begin_leave(&mut self, client: &Client, reason: &'static str) -> Option<LeaveFuture> {
        self.shutdown();
        self.joined = false;
        let member_id = {
            let mut s = lock(&self.shared);
            s.generation = -1;
            std::mem::take(&mut s.member_id)
        };
        if member_id.is_empty() || self.instance_id.is_some() {
            return None;
        }
        let (client, group) = (client.clone(), self.id.clone());
        Some(Box::pin(async move {
            if let Err(e) = send_leave(&client, &group, &member_id, reason).await {
                tracing::debug!(error = %e, "leave group failed");
            }
        }))
    }
}

/// A leave request to send ([`GroupMember::begin_leave`]): awaited by `close`, spawned by
/// `Drop`.
pub type LeaveFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn send_leave(client: &Client, group: &str, member_id: &str, reason: &str) -> Result<()> {
    let (_, conn) = client
        .connection(&Target::group(group), ConnectionClass::Group)
        .await?;
    let version = conn.max_version(ApiKey::LeaveGroup as i16).unwrap_or(0);
    let mut req = LeaveGroupRequest::default().with_group_id(gid(group));
    if version >= 3 {
        let mut m = MemberIdentity::default().with_member_id(sb(member_id));
        if version >= 5 {
            m = m.with_reason(Some(sb(reason)));
        }
        req = req.with_members(vec![m]);
    } else {
        req = req.with_member_id(sb(member_id));
    }
    conn.send(req)
        .await
        .map_err(|e| ClientError::net(e, ErrorContext::new().api("LeaveGroup")))?;
    Ok(())
}

async fn heartbeat_loop(
    client: Client,
    shared: Arc<Mutex<Shared>>,
    group: String,
    instance: Option<String>,
    interval: Duration,
    max_poll: Duration,
    session_timeout: Duration,
) {
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let (generation, member_id, last_poll, stop) = {
            let s = lock(&shared);
            (s.generation, s.member_id.clone(), s.last_poll, s.stop)
        };
        if stop {
            return;
        }
        if last_poll.elapsed() > max_poll {
            // Liveness: the application stopped polling. Leave so the group can move on
            // (Java does the same); the next poll rejoins.
            metrics::counter!("kafka_consumer_poll_timeouts_total").increment(1);
            tracing::warn!(group = %group, ?max_poll, "max.poll.interval.ms exceeded: leaving the group");
            if instance.is_none() {
                let _ =
                    send_leave(&client, &group, &member_id, "max.poll.interval.ms exceeded").await;
            }
            lock(&shared).health = Health::Lost(KafkaCode::UnknownMemberId);
            return;
        }
        let result = async {
            let (_, conn) = client
                .connection(&Target::group(group.clone()), ConnectionClass::Group)
                .await?;
            let version = conn.max_version(ApiKey::Heartbeat as i16).unwrap_or(0);
            let mut req = HeartbeatRequest::default()
                .with_group_id(gid(&group))
                .with_generation_id(generation)
                .with_member_id(sb(&member_id));
            if version >= 3 {
                req = req.with_group_instance_id(instance.as_deref().map(sb));
            }
            conn.send(req)
                .await
                .map_err(|e| ClientError::net(e, ErrorContext::new().api("Heartbeat")))
        }
        .await;
        match result {
            Ok(resp) => match KafkaCode::from_i16(resp.error_code) {
                KafkaCode::None => last_ok = Instant::now(),
                KafkaCode::RebalanceInProgress => {
                    lock(&shared).health = Health::Rejoin;
                    return;
                }
                c @ (KafkaCode::UnknownMemberId
                | KafkaCode::IllegalGeneration
                | KafkaCode::FencedInstanceId) => {
                    lock(&shared).health = Health::Lost(c);
                    return;
                }
                c => {
                    if c.needs_coordinator_refresh() {
                        client.invalidate_coordinator(CoordinatorKind::Group, &group);
                    }
                    tracing::debug!(code = %c, "heartbeat error");
                }
            },
            Err(e) => {
                client.report(&e);
                client.invalidate_coordinator(CoordinatorKind::Group, &group);
                tracing::debug!(error = %e, "heartbeat failed");
            }
        }
        if last_ok.elapsed() > session_timeout {
            // The coordinator has surely expired us by now.
            lock(&shared).health = Health::Lost(KafkaCode::UnknownMemberId);
            return;
        }
    }
}

/// What one join needs, owned, so that the join runs as a task and a poll can return at its
/// timeout while the coordinator waits for the other members.
#[derive(Debug)]
struct Joiner {
    id: String,
    instance_id: Option<String>,
    assignors: Vec<AssignorKind>,
    protocol: Option<AssignorKind>,
    shared: Arc<Mutex<Shared>>,
    rack: Option<String>,
    last_assignment: Option<StickyUserData>,
}

/// A finished join: the assignment and the protocol the group chose.
type JoinResult = Result<(Vec<TopicPartition>, Option<AssignorKind>)>;

impl Joiner {
    async fn join_and_sync(
        &mut self,
        client: &Client,
        topics: &[String],
        owned: &[TopicPartition],
        config: &ConsumerConfig,
        reason: &str,
    ) -> Result<Vec<TopicPartition>> {
        let deadline = Instant::now() + config.max_poll_interval + config.session_timeout;
        let mut backoff = kafka_core::client::Backoff::new(config.client.retry_backoff);
        loop {
            if Instant::now() > deadline {
                return Err(ConsumerError::Group {
                    group: self.id.clone(),
                    what: "join",
                    code: KafkaCode::RequestTimedOut,
                });
            }
            match self.join_once(client, topics, owned, config, reason).await {
                Ok(Some(a)) => return Ok(a),
                Ok(None) => continue,
                Err(e) => {
                    let retriable = match &e {
                        ConsumerError::Client(c) => {
                            client.report(c);
                            c.is_retriable() || c.needs_coordinator_refresh()
                        }
                        ConsumerError::Group { code, .. } => {
                            code.is_retriable()
                                || matches!(
                                    code,
                                    KafkaCode::RebalanceInProgress
                                        | KafkaCode::IllegalGeneration
                                        | KafkaCode::UnknownMemberId
                                        | KafkaCode::NotCoordinator
                                        | KafkaCode::CoordinatorNotAvailable
                                        | KafkaCode::CoordinatorLoadInProgress
                                )
                        }
                        _ => false,
                    };
                    if !retriable {
                        return Err(e);
                    }
                    if matches!(
                        e.kafka_code(),
                        Some(KafkaCode::NotCoordinator | KafkaCode::CoordinatorNotAvailable)
                    ) {
                        client.invalidate_coordinator(CoordinatorKind::Group, &self.id);
                    }
                    tracing::debug!(error = %e, "join/sync retry");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// One JoinGroup + SyncGroup. `Ok(None)`: join again at once (member id assigned).
    async fn join_once(
        &mut self,
        client: &Client,
        topics: &[String],
        owned: &[TopicPartition],
        config: &ConsumerConfig,
        reason: &str,
    ) -> Result<Option<Vec<TopicPartition>>> {
        let (node, conn) = client
            .connection(&Target::group(self.id.clone()), ConnectionClass::Group)
            .await?;
        let ctx = || {
            ErrorContext::new()
                .broker(node)
                .coordinator(CoordinatorKind::Group, self.id.clone())
        };
        let (member_id, generation) = {
            let s = lock(&self.shared);
            (s.member_id.clone(), s.generation)
        };
        let version = conn.max_version(ApiKey::JoinGroup as i16).unwrap_or(0);
        let protocols = self
            .assignors
            .iter()
            .map(|a| {
                let sub = Subscription {
                    topics: topics.to_vec(),
                    user_data: assignor::user_data(*a, generation, self.last_assignment.as_ref()),
                    owned: if a.is_cooperative() {
                        owned.to_vec()
                    } else {
                        Vec::new()
                    },
                    generation,
                    rack: self.rack.clone(),
                };
                JoinGroupRequestProtocol::default()
                    .with_name(sb(a.protocol_name()))
                    .with_metadata(sub.encode())
            })
            .collect();
        let mut req = JoinGroupRequest::default()
            .with_group_id(gid(&self.id))
            .with_session_timeout_ms(config.session_timeout.as_millis() as i32)
            .with_member_id(sb(&member_id))
            .with_protocol_type(sb("consumer"))
            .with_protocols(protocols);
        if version >= 1 {
            req = req.with_rebalance_timeout_ms(config.max_poll_interval.as_millis() as i32);
        }
        if version >= 5 {
            req = req.with_group_instance_id(self.instance_id.as_deref().map(sb));
        }
        if version >= 8 {
            req = req.with_reason(Some(sb(reason)));
        }
        // The coordinator holds JoinGroup up to the rebalance timeout.
        let resp = tokio::time::timeout(
            config.max_poll_interval + Duration::from_secs(5),
            conn.send(req),
        )
        .await
        .map_err(|_| ConsumerError::Group {
            group: self.id.clone(),
            what: "join",
            code: KafkaCode::RequestTimedOut,
        })?
        .map_err(|e| ClientError::net(e, ctx().api("JoinGroup")))?;
        let code = KafkaCode::from_i16(resp.error_code);
        match code {
            KafkaCode::None => {}
            KafkaCode::MemberIdRequired => {
                lock(&self.shared).member_id = resp.member_id.to_string();
                return Ok(None);
            }
            KafkaCode::UnknownMemberId | KafkaCode::IllegalGeneration => {
                let mut s = lock(&self.shared);
                s.member_id.clear();
                s.generation = -1;
                drop(s);
                return Ok(None);
            }
            c => {
                return Err(ConsumerError::Group {
                    group: self.id.clone(),
                    what: "join",
                    code: c,
                })
            }
        }
        let generation = resp.generation_id;
        let member_id = resp.member_id.to_string();
        {
            let mut s = lock(&self.shared);
            s.generation = generation;
            s.member_id = member_id.clone();
        }
        let protocol_name = resp
            .protocol_name
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let kind = AssignorKind::parse(&protocol_name)
            .filter(|k| self.assignors.contains(k))
            .ok_or_else(|| ConsumerError::UnknownAssignor(protocol_name.clone()))?;
        self.protocol = Some(kind);
        tracing::info!(generation, member = %member_id, leader = %resp.leader, protocol = %protocol_name, "joined group");
        let assignments = if resp.leader.as_str() == member_id && !resp.skip_assignment {
            self.lead(client, kind, &resp.members).await?
        } else {
            Vec::new()
        };
        let sync_version = conn.max_version(ApiKey::SyncGroup as i16).unwrap_or(0);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(gid(&self.id))
            .with_generation_id(generation)
            .with_member_id(sb(&member_id))
            .with_assignments(assignments);
        if sync_version >= 3 {
            sync = sync.with_group_instance_id(self.instance_id.as_deref().map(sb));
        }
        if sync_version >= 5 {
            sync = sync
                .with_protocol_type(Some(sb("consumer")))
                .with_protocol_name(Some(sb(&protocol_name)));
        }
        let resp = tokio::time::timeout(
            config.max_poll_interval + Duration::from_secs(5),
            conn.send(sync),
        )
        .await
        .map_err(|_| ConsumerError::Group {
            group: self.id.clone(),
            what: "sync",
            code: KafkaCode::RequestTimedOut,
        })?
        .map_err(|e| ClientError::net(e, ctx().api("SyncGroup")))?;
        match KafkaCode::from_i16(resp.error_code) {
            KafkaCode::None => {}
            c => {
                if matches!(c, KafkaCode::UnknownMemberId | KafkaCode::IllegalGeneration) {
                    let mut s = lock(&self.shared);
                    s.member_id.clear();
                    s.generation = -1;
                }
                return Err(ConsumerError::Group {
                    group: self.id.clone(),
                    what: "sync",
                    code: c,
                });
            }
        }
        let assignment = Assignment::decode(&resp.assignment)?;
        tracing::info!(
            generation,
            partitions = assignment.partitions.len(),
            "assignment received"
        );
        Ok(Some(assignment.partitions))
    }

    /// The leader computes every member's assignment.
    async fn lead(
        &self,
        client: &Client,
        kind: AssignorKind,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut list = Vec::with_capacity(members.len());
        let mut topics = BTreeSet::new();
        for m in members {
            let sub = Subscription::decode(&m.metadata)?;
            topics.extend(sub.topics.iter().cloned());
            list.push(Member {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                subscription: sub,
            });
        }
        let topics: Vec<String> = topics.into_iter().collect();
        let meta = client.refresh_metadata(&topics).await?;
        let counts: BTreeMap<String, i32> = topics
            .iter()
            .filter_map(|t| {
                let n = meta.partitions(t).len() as i32;
                (n > 0).then(|| (t.clone(), n))
            })
            .collect();
        let out = assignor::assign(kind, &list, &counts);
        Ok(out
            .into_iter()
            .map(|(member, parts)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(sb(&member))
                    .with_assignment(
                        Assignment {
                            partitions: parts,
                            user_data: None,
                        }
                        .encode(),
                    )
            })
            .collect())
    }
}

/// The group membership of a consumer: classic, or KIP-848 (`group.protocol=consumer`),
/// decided on the first poll from what the coordinator supports.
#[derive(Debug)]
pub struct GroupMember {
    classic: ClassicGroup,
    kip848: Option<ConsumerGroup>,
    decided: bool,
    want_kip848: bool,
    fallback: bool,
    config_id: String,
}

impl GroupMember {
    /// A member of `id` that has not joined yet.
    pub fn new(id: String, config: &ConsumerConfig) -> Self {
        Self {
            classic: ClassicGroup::new(id.clone(), config),
            kip848: None,
            decided: config.group_protocol == GroupProtocol::Classic,
            want_kip848: config.group_protocol == GroupProtocol::Consumer,
            fallback: config.group_protocol_fallback,
            config_id: id,
        }
    }

    /// The protocol in use (`None` before the first poll decided it).
    pub fn protocol(&self) -> Option<GroupProtocol> {
        if !self.decided {
            None
        } else if self.kip848.is_some() {
            Some(GroupProtocol::Consumer)
        } else {
            Some(GroupProtocol::Classic)
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.config_id
    }

    /// Whether the member joined.
    pub fn is_member(&self) -> bool {
        match &self.kip848 {
            Some(g) => g.is_member(),
            None => self.classic.is_member(),
        }
    }

    /// (member id, generation or member epoch).
    pub fn membership(&self) -> Option<(String, i32)> {
        match &self.kip848 {
            Some(g) => g.membership(),
            None => self.classic.membership(),
        }
    }

    pub(crate) fn committer(&self) -> Committer {
        match &self.kip848 {
            Some(g) => g.committer(),
            None => self.classic.committer(),
        }
    }

    /// Asks for a rejoin (classic; KIP-848 members send their new subscription instead).
    pub fn request_rejoin(&mut self, reason: &str) {
        self.classic.request_rejoin(reason);
    }

    /// The application polled.
    pub fn note_poll(&self) {
        match &self.kip848 {
            Some(g) => g.note_poll(),
            None => self.classic.note_poll(),
        }
    }

    /// Whether the poll must act now.
    pub fn needs_attention(&self) -> bool {
        !self.decided
            || match &self.kip848 {
                Some(g) => g.needs_attention(),
                None => self.classic.needs_attention(),
            }
    }

    /// When to look again.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        self.classic.next_deadline(now)
    }

    /// Stops heartbeating.
    pub fn stop_heartbeat(&mut self) {
        match &mut self.kip848 {
            Some(g) => g.stop_heartbeat(),
            None => self.classic.shutdown(),
        }
    }

    /// Starts a classic join decided by the last [`ensure_active`](Self::ensure_active).
    pub fn start_prepared(&mut self, client: &Client, topics: &[String], config: &ConsumerConfig) {
        if self.kip848.is_none() {
            self.classic.start_prepared(client, topics, config);
        }
    }

    /// Leaves the group (see [`begin_leave`](Self::begin_leave)).
    pub async fn leave(&mut self, client: &Client) {
        if let Some(leave) = self.begin_leave(client, "consumer closing") {
            leave.await;
        }
    }

    /// Stops heartbeating and gives the request that leaves the group, if one is due: none
    /// when not a member, nor for a classic static member (its partitions wait for it until
    /// `session.timeout.ms`); a KIP-848 static member sends epoch -2, which keeps them too.
    pub fn begin_leave(&mut self, client: &Client, reason: &'static str) -> Option<LeaveFuture> {
        match &mut self.kip848 {
            Some(g) => g.begin_leave(client),
            None => self.classic.begin_leave(client, reason),
        }
    }

    /// See [`ClassicGroup::ensure_active`].
    pub async fn ensure_active(
        &mut self,
        client: &Client,
        topics: &[String],
        owned: &[TopicPartition],
        config: &ConsumerConfig,
    ) -> Result<Vec<GroupEvent>> {
        if !self.decided {
            let (_, conn) = client
                .connection(
                    &Target::group(self.config_id.clone()),
                    ConnectionClass::Group,
                )
                .await?;
            let has = conn
                .max_version(ApiKey::ConsumerGroupHeartbeat as i16)
                .is_some();
            if has && self.want_kip848 {
                self.kip848 = Some(ConsumerGroup::new(self.config_id.clone(), config));
            } else if self.want_kip848 && !self.fallback {
                return Err(ConsumerError::GroupProtocolUnsupported);
            } else if self.want_kip848 {
                metrics::counter!("kafka_consumer_group_protocol_fallbacks_total").increment(1);
                tracing::warn!(group = %self.config_id, "the broker lacks ConsumerGroupHeartbeat (KIP-848); group.protocol.fallback=classic: using the classic protocol");
            }
            self.decided = true;
        }
        if let Some(g) = &mut self.kip848 {
            match g.ensure_active(client, topics, owned, config).await {
                Err(ConsumerError::GroupProtocolUnsupported) if self.fallback => {
                    g.stop_heartbeat();
                    self.kip848 = None;
                    metrics::counter!("kafka_consumer_group_protocol_fallbacks_total").increment(1);
                    tracing::warn!(group = %self.config_id, "the brokers refuse ConsumerGroupHeartbeat (KIP-848 not enabled); group.protocol.fallback=classic: using the classic protocol");
                }
                r => return r,
            }
        }
        self.classic
            .ensure_active(client, topics, owned, config)
            .await
    }
}
