//! The consumer: assignment, positions, the fetch loop, commits, introspection.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_core::client::{Client, ConnectionClass, Error as ClientError, ErrorContext};
use kafka_core::codec::records::BatchDecoder;
use kafka_core::codec::records::TimestampType;
use kafka_core::KafkaCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use regex::Regex;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::budget::MemoryBudget;
use crate::config::{ConsumerConfig, GroupProtocol, OffsetReset, MIN_DECOMPRESS_ROOM};
use crate::error::{ConsumerError, Result};
use crate::group::{GroupEvent, GroupMember};
use crate::offsets::{self, Committer, OffsetAndEpoch, EARLIEST, LATEST};
use crate::partition::{scan_batches, Drained, NeedPosition, PartState};
use crate::record::{ConsumerRecord, FetchedBatch, TimestampKind};
use crate::session::{FetchPlan, FetchSession, PartitionFetch};
use crate::TopicPartition;

/// What the group did to this consumer's assignment; given to the rebalance listener.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RebalanceEvent {
    /// Partitions now assigned.
    Assigned(Vec<TopicPartition>),
    /// Partitions about to be given up (commit their positions now if you commit manually):
    /// the consumer still owns them while the listener runs.
    Revoked(Vec<(TopicPartition, i64)>),
    /// Partitions lost without a chance to commit (membership expired or fenced).
    Lost(Vec<TopicPartition>),
}

/// The rebalance listener: called with each event and a handle that can commit; the
/// consumer awaits the returned future (bounded by `max.poll.interval.ms`; a listener that
/// does not return in time is logged and counted, and the rebalance goes on).
pub type RebalanceListener =
    Box<dyn FnMut(RebalanceEvent, CommitHandle) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A handle that commits offsets for the consumer's group (usable inside a rebalance
/// listener, or from another task).
#[derive(Debug, Clone)]
pub struct CommitHandle {
    client: Client,
    group: Option<String>,
    who: Committer,
}

impl CommitHandle {
    /// Commits `offsets` (next offset to read, per partition).
    pub async fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let group = self
            .group
            .as_deref()
            .ok_or(ConsumerError::NoGroup("commit"))?;
        let list: Vec<_> = offsets.iter().map(|(tp, o)| (tp.clone(), *o, -1)).collect();
        offsets::commit(&self.client, group, &self.who, &list).await
    }
}

/// Memory accounting ([`Consumer::memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUsage {
    /// `fetch.memory.budget.bytes`.
    pub limit: usize,
    /// Fetched record bytes held.
    pub held: usize,
    /// Reserved by fetches in flight.
    pub reserved: usize,
    /// Kept for decompressing one batch.
    pub decompression_room: usize,
    /// Highest `held + reserved` so far.
    pub peak: usize,
}

/// One partition as [`Consumer::describe`] sees it.
#[derive(Debug, Clone)]
pub struct PartitionReport {
    /// The partition.
    pub tp: TopicPartition,
    /// Next offset to hand out (`None`: not resolved yet).
    pub position: Option<i64>,
    /// Last committed offset this consumer knows of.
    pub committed: Option<i64>,
    /// High watermark from the last fetch (-1 unknown).
    pub high_watermark: i64,
    /// Last stable offset from the last fetch (-1 unknown).
    pub last_stable_offset: i64,
    /// Records between the position and the high watermark (or LSO under read_committed).
    pub lag: Option<i64>,
    /// Paused by the application.
    pub paused: bool,
    /// Held after an error that needs the application (`NoOffset`, `LogTruncation` with
    /// `auto.offset.reset=none`): neither fetched nor handed out until it seeks.
    pub awaiting_seek: bool,
    /// Bytes buffered.
    pub buffered_bytes: usize,
    /// When a fetch last returned for it.
    pub last_fetch: Option<Instant>,
    /// The replica it is fetched from when not the leader (KIP-392).
    pub preferred_replica: Option<i32>,
    /// The broker whose fetch response last carried records for it: the leader, or the
    /// preferred read replica of `client.rack` (KIP-392). `None` before any records.
    pub fetched_from: Option<i32>,
}

/// What one fetch task brings back.
struct FetchDone {
    node: i32,
    reserved: usize,
    plan: FetchPlan,
    generations: HashMap<TopicPartition, u64>,
    sent_at: Instant,
    result: std::result::Result<(FetchResponse, i16), ClientError>,
}

enum Subscription {
    None,
    Assigned,
    Topics(Vec<String>),
    Pattern(Regex),
}

/// A Kafka consumer. See the crate documentation.
pub struct Consumer {
    client: Client,
    config: Arc<ConsumerConfig>,
    parts: BTreeMap<TopicPartition, PartState>,
    drain_order: VecDeque<TopicPartition>,
    sessions: HashMap<i32, FetchSession>,
    inflight: JoinSet<FetchDone>,
    inflight_nodes: HashSet<i32>,
    node_backoff: HashMap<i32, Instant>,
    budget: MemoryBudget,
    decoder: BatchDecoder,
    ready: VecDeque<ConsumerRecord>,
    /// Applied when `ready` empties: (partition, position after the batch, epoch, generation).
    ready_end: Option<(TopicPartition, i64, i32, u64)>,
    handed_out: HandedOut,
    errors: VecDeque<ConsumerError>,
    topic_ids: HashMap<Arc<str>, Uuid>,
    id_names: HashMap<Uuid, Arc<str>>,
    refresh_metadata_at: Option<Instant>,
    subscription: Subscription,
    subscribed_topics: Vec<String>,
    next_pattern_refresh: Instant,
    group: Option<GroupMember>,
    listener: Option<RebalanceListener>,
    next_auto_commit: Instant,
    last_upkeep: Option<Instant>,
    next_liveness_check: Option<Instant>,
    next_lag_metrics: Option<Instant>,
    closed: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.config.group_id)
            .field("assignment", &self.parts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Connects (bootstraps) and returns a consumer with nothing assigned.
    pub async fn connect(config: ConsumerConfig) -> Result<Self> {
        let client = Client::connect(config.client.clone()).await?;
        Self::with_client(client, config)
    }

    /// A consumer on an existing client.
    pub fn with_client(client: Client, config: ConsumerConfig) -> Result<Self> {
        let room = (config.memory_budget / 4).clamp(
            MIN_DECOMPRESS_ROOM,
            kafka_core::codec::compression::DEFAULT_MAX_DECOMPRESSED_SIZE,
        );
        let budget = MemoryBudget::new(config.memory_budget, room);
        let decoder = BatchDecoder::new(room).verify_crc(config.check_crcs);
        let group = config
            .group_id
            .as_ref()
            .map(|g| GroupMember::new(g.clone(), &config));
        let now = Instant::now();
        Ok(Self {
            next_auto_commit: now + config.auto_commit_interval,
            client,
            config: Arc::new(config),
            parts: BTreeMap::new(),
            drain_order: VecDeque::new(),
            sessions: HashMap::new(),
            inflight: JoinSet::new(),
            inflight_nodes: HashSet::new(),
            node_backoff: HashMap::new(),
            budget,
            decoder,
            ready: VecDeque::new(),
            ready_end: None,
            handed_out: HandedOut::default(),
            errors: VecDeque::new(),
            topic_ids: HashMap::new(),
            id_names: HashMap::new(),
            refresh_metadata_at: None,
            subscription: Subscription::None,
            subscribed_topics: Vec::new(),
            next_pattern_refresh: now,
            group,
            listener: None,
            last_upkeep: None,
            next_liveness_check: None,
            next_lag_metrics: None,
            closed: false,
        })
    }

    /// The underlying cluster client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Sets the rebalance listener (group subscriptions).
    pub fn set_rebalance_listener(&mut self, listener: RebalanceListener) {
        self.listener = Some(listener);
    }

    // ---------------------------------------------------------------- assignment

    /// Assigns exactly these partitions (manual assignment: no group membership). Positions
    /// come from the committed offsets when `group.id` is set, else from
    /// `auto.offset.reset`, unless [`seek`](Self::seek) sets them first.
    pub fn assign<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.check_open()?;
        if matches!(
            self.subscription,
            Subscription::Topics(_) | Subscription::Pattern(_)
        ) {
            return Err(ConsumerError::Config(
                "assign() after subscribe(): unsubscribe first".into(),
            ));
        }
        let wanted: Vec<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        self.set_assignment(&wanted);
        self.subscription = if wanted.is_empty() {
            Subscription::None
        } else {
            Subscription::Assigned
        };
        Ok(())
    }

    /// Subscribes to `topics` through the group (`group.id` required).
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.check_open()?;
        self.group_required("subscribe")?;
        if matches!(self.subscription, Subscription::Assigned) {
            return Err(ConsumerError::Config(
                "subscribe() after assign(): unsubscribe first".into(),
            ));
        }
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        if topics.iter().any(|t| t.is_empty()) {
            return Err(ConsumerError::Config("empty topic name".into()));
        }
        self.subscribed_topics = topics.clone();
        self.subscription = Subscription::Topics(topics);
        if let Some(g) = &mut self.group {
            g.request_rejoin("subscription changed");
        }
        Ok(())
    }

    /// Subscribes to every topic whose whole name matches `pattern` (checked against the
    /// cluster's topics every `metadata.max.age.ms`).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.check_open()?;
        self.group_required("subscribe_pattern")?;
        let re = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| ConsumerError::Config(format!("bad topic pattern {pattern:?}: {e}")))?;
        self.subscription = Subscription::Pattern(re);
        self.subscribed_topics.clear();
        self.next_pattern_refresh = Instant::now();
        Ok(())
    }

    /// Drops the subscription or assignment (leaving the group's assignment on the next
    /// poll is the group's business; this forgets every partition now).
    pub async fn unsubscribe(&mut self) -> Result<()> {
        if let Some(g) = &mut self.group {
            if g.is_member() {
                let revoked = self.positions_of(&self.parts.keys().cloned().collect::<Vec<_>>());
                self.run_listener(RebalanceEvent::Revoked(revoked)).await;
                self.auto_commit_now().await.ok();
                if let Some(g) = &mut self.group {
                    g.leave(&self.client).await;
                }
            }
        }
        self.subscription = Subscription::None;
        self.subscribed_topics.clear();
        self.set_assignment(&[]);
        Ok(())
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    fn set_assignment(&mut self, wanted: &[TopicPartition]) {
        let keep: HashSet<&TopicPartition> = wanted.iter().collect();
        let mut released = 0;
        let per_partition = self.parts.len() <= MAX_LAG_GAUGES;
        self.parts.retain(|tp, p| {
            let k = keep.contains(tp);
            if !k {
                released += p.invalidate(NeedPosition::Committed);
                if per_partition {
                    // A revoked partition's lag is its new owner's to report: a value left
                    // behind here would stay frozen (the facade cannot remove a gauge).
                    lag_gauge(tp).set(0.0);
                }
            }
            k
        });
        self.budget.release(released);
        for tp in wanted {
            self.parts
                .entry(tp.clone())
                .or_insert_with(|| PartState::new(tp.clone()));
        }
        self.drain_order.retain(|tp| keep.contains(tp));
        if let Some((tp, ..)) = &self.ready_end {
            if !keep.contains(tp) {
                self.ready.clear();
                self.ready_end = None;
            }
        }
        metrics::gauge!("kafka_consumer_assigned_partitions").set(self.parts.len() as f64);
    }

    // ---------------------------------------------------------------- positions

    /// Moves `tp` to `offset`: the next record handed out is the one at `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let released = {
            let p = self.part_mut(tp)?;
            p.seek(offset, -1)
        };
        self.budget.release(released);
        self.drop_ready_of(tp);
        Ok(())
    }

    /// Moves each partition to the first offset whose timestamp is at or after the given
    /// one (ListOffsets); partitions with no such record move to the end of the log.
    pub async fn seek_to_timestamp(&mut self, targets: &[(TopicPartition, i64)]) -> Result<()> {
        for (tp, _) in targets {
            self.part_mut(tp)?;
        }
        let found =
            offsets::list_offsets(&self.client, self.config.isolation_level.wire(), targets)
                .await?;
        let missing: Vec<(TopicPartition, i64)> = targets
            .iter()
            .filter(|(tp, _)| found.get(tp).copied().flatten().is_none())
            .map(|(tp, _)| (tp.clone(), LATEST))
            .collect();
        let ends =
            offsets::list_offsets(&self.client, self.config.isolation_level.wire(), &missing)
                .await?;
        for (tp, _) in targets {
            let at = found
                .get(tp)
                .copied()
                .flatten()
                .or_else(|| ends.get(tp).copied().flatten());
            if let Some(OffsetAndEpoch { offset, .. }) = at {
                self.seek(tp, offset)?;
            }
        }
        Ok(())
    }

    /// Moves the partitions to the start of their logs.
    pub async fn seek_to_beginning(&mut self, tps: &[TopicPartition]) -> Result<()> {
        self.seek_to_special(tps, EARLIEST).await
    }

    /// Moves the partitions to the end of their logs.
    pub async fn seek_to_end(&mut self, tps: &[TopicPartition]) -> Result<()> {
        self.seek_to_special(tps, LATEST).await
    }

    async fn seek_to_special(&mut self, tps: &[TopicPartition], ts: i64) -> Result<()> {
        let list: Vec<_> = tps.iter().map(|tp| (tp.clone(), ts)).collect();
        for tp in tps {
            self.part_mut(tp)?;
        }
        let found =
            offsets::list_offsets(&self.client, self.config.isolation_level.wire(), &list).await?;
        for tp in tps {
            if let Some(Some(o)) = found.get(tp) {
                self.seek(tp, o.offset)?;
            }
        }
        Ok(())
    }

    /// The next offset to be handed out for `tp` (`None` until resolved by a poll).
    pub fn position(&self, tp: &TopicPartition) -> Result<Option<i64>> {
        let p = self.parts.get(tp).ok_or_else(|| not_assigned(tp))?;
        Ok((p.need == NeedPosition::No).then_some(p.position))
    }

    /// The committed offsets of `tps` (group required).
    pub async fn committed(
        &mut self,
        tps: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, Option<i64>>> {
        let group = self.group_required("committed")?.to_owned();
        let found = offsets::fetch_committed(&self.client, &group, tps).await?;
        let mut out = HashMap::new();
        for tp in tps {
            let v = found.get(tp).copied().flatten().map(|o| o.offset);
            if let Some(p) = self.parts.get_mut(tp) {
                p.committed = v;
            }
            out.insert(tp.clone(), v);
        }
        Ok(out)
    }

    /// Pauses fetching these partitions (buffered data is kept; nothing is handed out
    /// until resumed). Pauses do not survive losing a partition in a rebalance: a partition
    /// assigned again starts unpaused, as with the Java client.
    pub fn pause(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            self.part_mut(tp)?.paused = true;
        }
        Ok(())
    }

    /// Resumes fetching.
    pub fn resume(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            self.part_mut(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.parts
            .values()
            .filter(|p| p.paused)
            .map(|p| p.tp.clone())
            .collect()
    }

    /// The memory accounting.
    pub fn memory(&self) -> MemoryUsage {
        MemoryUsage {
            limit: self.budget.limit(),
            held: self.budget.held(),
            reserved: self.budget.reserved(),
            decompression_room: self.budget.decompression_room(),
            peak: self.budget.peak(),
        }
    }

    /// Introspection: assignment, positions, committed offsets (as last known) and lag of
    /// every assigned partition.
    pub fn describe(&self) -> Vec<PartitionReport> {
        let committed = self.config.isolation_level == crate::IsolationLevel::ReadCommitted;
        self.parts
            .values()
            .map(|p| {
                let position = (p.need == NeedPosition::No).then_some(p.position);
                let end = if committed {
                    p.last_stable_offset
                } else {
                    p.high_watermark
                };
                PartitionReport {
                    tp: p.tp.clone(),
                    position,
                    committed: p.committed,
                    high_watermark: p.high_watermark,
                    last_stable_offset: p.last_stable_offset,
                    lag: position.filter(|_| end >= 0).map(|pos| (end - pos).max(0)),
                    paused: p.paused,
                    awaiting_seek: p.awaiting_seek,
                    buffered_bytes: p.buffered,
                    last_fetch: p.last_fetch,
                    preferred_replica: p.preferred_replica.map(|(n, _)| n),
                    fetched_from: p.fetched_from,
                }
            })
            .collect()
    }

    /// The group member id and generation (classic) or member epoch (KIP-848), if a
    /// member.
    pub fn group_membership(&self) -> Option<(String, i32)> {
        self.group.as_ref().and_then(|g| g.membership())
    }

    /// The group protocol in use (`None` without a group, or before the first poll).
    pub fn group_protocol(&self) -> Option<GroupProtocol> {
        self.group.as_ref().and_then(GroupMember::protocol)
    }

    // ---------------------------------------------------------------- commits

    /// A handle that commits for this consumer's group (for another task or a listener).
    pub fn commit_handle(&self) -> CommitHandle {
        CommitHandle {
            client: self.client.clone(),
            group: self.config.group_id.clone(),
            who: self.committer(),
        }
    }

    fn committer(&self) -> Committer {
        match &self.group {
            Some(g) => g.committer(),
            None => Committer {
                generation: -1,
                member_id: String::new(),
                instance_id: None,
            },
        }
    }

    fn consumed_offsets(&self) -> Vec<(TopicPartition, i64, i32)> {
        self.parts
            .values()
            .filter(|p| p.need == NeedPosition::No && p.position >= 0)
            .filter(|p| p.committed != Some(p.position))
            .map(|p| (p.tp.clone(), p.position, p.position_epoch))
            .collect()
    }

    /// Commits the position of every assigned partition (what was handed out) and waits.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let group = self.group_required("commit")?.to_owned();
        let list = self.consumed_offsets();
        offsets::commit(&self.client, &group, &self.committer(), &list).await?;
        for (tp, off, _) in list {
            if let Some(p) = self.parts.get_mut(&tp) {
                p.committed = Some(off);
            }
        }
        Ok(())
    }

    /// Commits these offsets (next offset to read) and waits.
    pub async fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let group = self.group_required("commit")?.to_owned();
        let list: Vec<_> = offsets.iter().map(|(tp, o)| (tp.clone(), *o, -1)).collect();
        offsets::commit(&self.client, &group, &self.committer(), &list).await?;
        for (tp, off) in offsets {
            if let Some(p) = self.parts.get_mut(tp) {
                p.committed = Some(*off);
            }
        }
        Ok(())
    }

    /// Commits the positions in the background; the returned handle gives the outcome
    /// (dropping it does not cancel the commit).
    pub fn commit_async(&mut self) -> Result<tokio::task::JoinHandle<Result<()>>> {
        let group = self.group_required("commit")?.to_owned();
        let list = self.consumed_offsets();
        for (tp, off, _) in &list {
            if let Some(p) = self.parts.get_mut(tp) {
                p.committed = Some(*off);
            }
        }
        let client = self.client.clone();
        let who = self.committer();
        Ok(tokio::spawn(async move {
            offsets::commit(&client, &group, &who, &list).await
        }))
    }

    async fn auto_commit_now(&mut self) -> Result<()> {
        if self.config.enable_auto_commit && self.config.group_id.is_some() {
            self.commit_sync().await
        } else {
            Ok(())
        }
    }

    async fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || self.config.group_id.is_none() {
            return;
        }
        let now = Instant::now();
        if now < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = now + self.config.auto_commit_interval;
        if let Err(e) = self.commit_sync().await {
            tracing::warn!(error = %e, "auto-commit failed");
        }
    }

    // ---------------------------------------------------------------- receiving

    /// Waits for the next record.
    pub async fn recv(&mut self) -> Result<ConsumerRecord> {
        self.upkeep().await?;
        loop {
            if let Some(r) = self.pop_ready() {
                return Ok(r);
            }
            self.step(None).await?;
        }
    }

    /// Up to `max.poll.records` records, waiting at most `timeout` for the first (an empty
    /// vector after the timeout).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        let max = self.config.max_poll_records;
        let mut out = Vec::new();
        self.upkeep().await?;
        loop {
            while out.len() < max {
                match self.pop_ready() {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if !out.is_empty() || Instant::now() >= deadline {
                self.handed_out.report();
                self.start_fetches();
                return Ok(out);
            }
            self.step(Some(deadline)).await?;
        }
    }

    /// Whole batches, the fastest way to read: up to `max.poll.records` records' worth,
    /// waiting at most `timeout` for the first batch. Positions move past each batch
    /// returned.
    pub async fn poll_batches(&mut self, timeout: Duration) -> Result<Vec<FetchedBatch>> {
        let deadline = Instant::now() + timeout;
        let max = self.config.max_poll_records;
        let mut out = Vec::new();
        let mut count = 0;
        self.upkeep().await?;
        // Records already decoded for recv() come first, as one owned batch each.
        if !self.ready.is_empty() {
            self.ready.clear();
            if let Some((tp, ..)) = self.ready_end.take() {
                // Re-read from the position (the records still queued were not handed out).
                let pos = self.parts.get(&tp).map(|p| p.position);
                if let Some(pos) = pos {
                    self.seek(&tp, pos)?;
                }
            }
        }
        loop {
            while count < max {
                match self.next_batch()? {
                    Some(b) => {
                        count += b.batch.record_count();
                        self.handed_out.batch(&b);
                        out.push(b);
                    }
                    None => break,
                }
            }
            if !out.is_empty() || Instant::now() >= deadline {
                self.handed_out.report();
                self.start_fetches();
                return Ok(out);
            }
            self.step(Some(deadline)).await?;
        }
    }

    /// The records as a [`futures_core::Stream`] (each item is what [`recv`](Self::recv)
    /// returns).
    pub fn stream(&mut self) -> impl futures_core::Stream<Item = Result<ConsumerRecord>> + '_ {
        futures_util::stream::unfold(self, |c| async move {
            let r = c.recv().await;
            Some((r, c))
        })
    }

    fn pop_ready(&mut self) -> Option<ConsumerRecord> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                self.handed_out.record();
                if let Some(p) = self.parts.get_mut(&r.topic_partition()) {
                    p.position = r.offset + 1;
                    p.position_epoch = r.leader_epoch;
                    p.last_progress = Some(Instant::now());
                }
                if self.ready.is_empty() {
                    self.finish_ready_batch();
                }
                return Some(r);
            }
            self.finish_ready_batch();
            match self.next_batch() {
                Ok(Some(b)) => {
                    // Undo the batch-level position move: records move it one by one.
                    let end = b.next_offset();
                    let epoch = b.batch.header().partition_leader_epoch;
                    let gen = {
                        let p = self
                            .parts
                            .get_mut(&b.tp)
                            .expect("batch of an assigned partition");
                        p.position = b.from;
                        p.generation
                    };
                    match b.to_records() {
                        Ok(rs) => {
                            self.handed_out.ready_batch(&b);
                            self.ready.extend(rs);
                        }
                        Err(e) => {
                            self.errors.push_back(ConsumerError::Corrupt {
                                topic: b.tp.topic.to_string(),
                                partition: b.tp.partition,
                                offset: b.from,
                                source: e,
                            });
                            return None;
                        }
                    }
                    self.ready_end = Some((b.tp, end, epoch, gen));
                }
                Ok(None) => return None,
                Err(e) => {
                    self.errors.push_back(e);
                    return None;
                }
            }
        }
    }

    fn finish_ready_batch(&mut self) {
        if !self.ready.is_empty() {
            return;
        }
        self.handed_out.report();
        if let Some((tp, end, epoch, gen)) = self.ready_end.take() {
            if let Some(p) = self.parts.get_mut(&tp) {
                if p.generation == gen && p.position < end {
                    p.position = end;
                    p.position_epoch = epoch;
                }
            }
        }
    }

    fn drop_ready_of(&mut self, tp: &TopicPartition) {
        if self.ready_end.as_ref().is_some_and(|(t, ..)| t == tp) {
            self.ready.clear();
            self.ready_end = None;
        }
    }

    /// The next batch from the buffers, round-robin over partitions; moves the position.
    fn next_batch(&mut self) -> Result<Option<FetchedBatch>> {
        if let Some(e) = self.errors.pop_front() {
            return Err(e);
        }
        let isolation = self.config.isolation_level;
        for _ in 0..self.drain_order.len() {
            let Some(tp) = self.drain_order.pop_front() else {
                break;
            };
            let Some(p) = self.parts.get_mut(&tp) else {
                continue;
            };
            if p.stopped() || p.need != NeedPosition::No {
                if p.has_data() {
                    self.drain_order.push_back(tp);
                }
                continue;
            }
            let mut released = 0;
            let r = p.next_batch(&mut self.decoder, isolation, &mut released);
            self.budget.release(released);
            match r {
                Ok(Drained::Batch { batch, from }) => {
                    let p = self.parts.get_mut(&tp).expect("present");
                    p.position = batch.last_offset() + 1;
                    p.position_epoch = batch.header().partition_leader_epoch;
                    p.last_progress = Some(Instant::now());
                    if p.has_data() {
                        self.drain_order.push_back(tp.clone());
                    }
                    return Ok(Some(FetchedBatch { tp, batch, from }));
                }
                Ok(Drained::Empty) => continue,
                Err(e) => {
                    let position = self.parts.get(&tp).map_or(-1, |p| p.position);
                    return Err(ConsumerError::Corrupt {
                        topic: tp.topic.to_string(),
                        partition: tp.partition,
                        offset: position,
                        source: e,
                    });
                }
            }
        }
        Ok(None)
    }

    // ---------------------------------------------------------------- the loop

    /// What must happen at least once per poll even when records are ready: group
    /// upkeep (rebalances, liveness), auto-commit of what earlier polls handed out,
    /// fetch responses that already arrived, new fetches. Cheap when nothing is due
    /// (at most every 50 ms unless the group needs attention).
    async fn upkeep(&mut self) -> Result<()> {
        self.check_open()?;
        let now = Instant::now();
        if self
            .last_upkeep
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(50))
            && !(matches!(
                self.subscription,
                Subscription::Topics(_) | Subscription::Pattern(_)
            ) && self
                .group
                .as_ref()
                .is_some_and(GroupMember::needs_attention))
        {
            return Ok(());
        }
        self.last_upkeep = Some(now);
        self.group_upkeep().await?;
        self.maybe_auto_commit().await;
        while let Some(done) = self.inflight.try_join_next() {
            match done {
                Ok(done) => self.handle_fetch(done),
                Err(e) => tracing::error!(error = %e, "fetch task failed"),
            }
        }
        self.start_fetches();
        self.check_liveness(now);
        Ok(())
    }

    /// Liveness (the field's "consumer silently stopped" class): an assigned, unpaused
    /// partition that has not been fetched for a long time, and pauses kept across a
    /// rebalance, are logged and counted. Checked every few seconds.
    fn check_liveness(&mut self, now: Instant) {
        if self.next_liveness_check.is_some_and(|t| now < t) {
            return;
        }
        self.next_liveness_check = Some(now + Duration::from_secs(5));
        let limit =
            (self.config.fetch_max_wait * 4).max(self.config.client.connection.request_timeout * 2);
        let mut stalled = 0;
        for p in self.parts.values_mut() {
            if p.stopped() || p.need != NeedPosition::No {
                continue;
            }
            let since = p.last_fetch.or(p.assigned_at);
            if since.is_some_and(|t| now.duration_since(t) > limit) {
                stalled += 1;
                if !p.reported_stall {
                    p.reported_stall = true;
                    tracing::warn!(partition = %p.tp, ?limit, "assigned partition not fetched for too long");
                    metrics::counter!("kafka_consumer_stalled_partitions_total").increment(1);
                }
            } else {
                p.reported_stall = false;
            }
        }
        metrics::gauge!("kafka_consumer_stalled_partitions").set(stalled as f64);
        metrics::gauge!("kafka_consumer_paused_partitions")
            .set(self.parts.values().filter(|p| p.paused).count() as f64);
    }

    /// Partitions assigned now that are not fetched although unpaused (see the liveness
    /// notes in the design): empty in a healthy consumer.
    pub fn stalled_partitions(&self) -> Vec<TopicPartition> {
        let now = Instant::now();
        let limit =
            (self.config.fetch_max_wait * 4).max(self.config.client.connection.request_timeout * 2);
        self.parts
            .values()
            .filter(|p| !p.stopped() && p.need == NeedPosition::No)
            .filter(|p| {
                p.last_fetch
                    .or(p.assigned_at)
                    .is_some_and(|t| now.duration_since(t) > limit)
            })
            .map(|p| p.tp.clone())
            .collect()
    }

    /// One round: group upkeep, positions, metadata, fetches; then waits for one fetch
    /// response (or the deadline, or a group timer) and processes it.
    async fn step(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.check_open()?;
        if let Some(e) = self.errors.pop_front() {
            return Err(e);
        }
        self.group_upkeep().await?;
        self.maybe_auto_commit().await;
        self.resolve_positions().await?;
        self.maybe_refresh_metadata().await;
        self.start_fetches();
        let wake = self.next_wakeup(deadline);
        if self.inflight.is_empty() {
            // Nothing to wait for but time: group timers, backoffs, the caller's deadline.
            tokio::time::sleep_until(wake.into()).await;
            return Ok(());
        }
        tokio::select! {
            done = self.inflight.join_next() => {
                if let Some(done) = done {
                    match done {
                        Ok(done) => self.handle_fetch(done),
                        Err(e) => tracing::error!(error = %e, "fetch task failed"),
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        Ok(())
    }

    fn next_wakeup(&self, deadline: Option<Instant>) -> Instant {
        let now = Instant::now();
        let mut wake = now + Duration::from_millis(200).max(self.config.fetch_max_wait);
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        if let Some(g) = &self.group {
            wake = wake.min(g.next_deadline(now));
        }
        if let Some(t) = self.refresh_metadata_at {
            wake = wake.min(t.max(now + Duration::from_millis(10)));
        }
        for t in self.node_backoff.values() {
            if *t > now {
                wake = wake.min(*t);
            }
        }
        for p in self.parts.values() {
            if let Some(t) = p.backoff_until {
                if t > now {
                    wake = wake.min(t);
                }
            }
        }
        if self.config.enable_auto_commit && self.config.group_id.is_some() {
            wake = wake.min(self.next_auto_commit);
        }
        wake
    }

    async fn group_upkeep(&mut self) -> Result<()> {
        let topics = match &self.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(re) => {
                let now = Instant::now();
                if now >= self.next_pattern_refresh {
                    self.next_pattern_refresh = now + self.config.metadata_max_age;
                    let meta = self.client.refresh_all_metadata().await?;
                    let mut matched: Vec<String> = meta
                        .topics()
                        .filter(|t| !(self.config.exclude_internal_topics && t.is_internal))
                        .filter(|t| re.is_match(&t.name))
                        .map(|t| t.name.clone())
                        .collect();
                    matched.sort();
                    if matched != self.subscribed_topics {
                        self.subscribed_topics = matched;
                        if let Some(g) = &mut self.group {
                            g.request_rejoin("pattern matched new topics");
                        }
                    }
                }
                self.subscribed_topics.clone()
            }
            _ => return Ok(()),
        };
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        group.note_poll();
        let owned: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        let events = group
            .ensure_active(&self.client, &topics, &owned, &self.config)
            .await?;
        for ev in events {
            match ev {
                GroupEvent::Revoke(tps) => {
                    let revoked = self.positions_of(&tps);
                    if self.config.enable_auto_commit {
                        let list: Vec<_> = revoked
                            .iter()
                            .filter(|(tp, off)| {
                                *off >= 0
                                    && self.parts.get(tp).is_some_and(|p| {
                                        p.need == NeedPosition::No && p.committed != Some(*off)
                                    })
                            })
                            .map(|(tp, off)| {
                                let e = self.parts.get(tp).map_or(-1, |p| p.position_epoch);
                                (tp.clone(), *off, e)
                            })
                            .collect();
                        if let Err(e) = offsets::commit(
                            &self.client,
                            self.group.as_ref().map(|g| g.id()).unwrap_or(""),
                            &self.committer(),
                            &list,
                        )
                        .await
                        {
                            tracing::warn!(error = %e, "commit of revoked partitions failed");
                        }
                    }
                    self.run_listener(RebalanceEvent::Revoked(revoked)).await;
                    let keep: Vec<TopicPartition> = self
                        .parts
                        .keys()
                        .filter(|tp| !tps.contains(tp))
                        .cloned()
                        .collect();
                    self.set_assignment(&keep);
                }
                GroupEvent::Lost(tps) => {
                    self.run_listener(RebalanceEvent::Lost(tps.clone())).await;
                    let keep: Vec<TopicPartition> = self
                        .parts
                        .keys()
                        .filter(|tp| !tps.contains(tp))
                        .cloned()
                        .collect();
                    self.set_assignment(&keep);
                }
                GroupEvent::Assign(tps) => {
                    let still_paused = self.paused();
                    if !still_paused.is_empty() {
                        // Java's rule: pauses of partitions kept across a rebalance stay.
                        // Said loudly, as a forgotten pause is a classic "stuck consumer".
                        tracing::warn!(paused = ?still_paused, "partitions stay paused across the rebalance");
                        metrics::counter!("kafka_consumer_pauses_across_rebalance_total")
                            .increment(still_paused.len() as u64);
                    }
                    let mut all: Vec<TopicPartition> = self.parts.keys().cloned().collect();
                    for tp in &tps {
                        if !all.contains(tp) {
                            all.push(tp.clone());
                        }
                    }
                    self.set_assignment(&all);
                    self.run_listener(RebalanceEvent::Assigned(tps)).await;
                }
            }
        }
        if let Some(g) = &mut self.group {
            g.start_prepared(&self.client, &topics, &self.config);
        }
        Ok(())
    }

    fn positions_of(&self, tps: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        tps.iter()
            .map(|tp| {
                let pos = self
                    .parts
                    .get(tp)
                    .filter(|p| p.need == NeedPosition::No)
                    .map_or(-1, |p| p.position);
                (tp.clone(), pos)
            })
            .collect()
    }

    async fn run_listener(&mut self, event: RebalanceEvent) {
        let handle = self.commit_handle();
        let timeout = self.config.max_poll_interval;
        if let Some(l) = &mut self.listener {
            let fut = l(event, handle);
            if tokio::time::timeout(timeout, fut).await.is_err() {
                metrics::counter!("kafka_consumer_listener_timeouts_total").increment(1);
                tracing::error!(
                    ?timeout,
                    "rebalance listener did not return within max.poll.interval.ms"
                );
            }
        }
    }

    /// Gives positions to partitions without one: committed offsets first (group), then
    /// `auto.offset.reset`.
    async fn resolve_positions(&mut self) -> Result<()> {
        let committed_wanted: Vec<TopicPartition> = self
            .parts
            .values()
            .filter(|p| p.need == NeedPosition::Committed)
            .map(|p| p.tp.clone())
            .collect();
        if !committed_wanted.is_empty() {
            let found = match &self.config.group_id {
                Some(g) => offsets::fetch_committed(&self.client, g, &committed_wanted).await?,
                None => HashMap::new(),
            };
            for tp in &committed_wanted {
                let Some(p) = self.parts.get_mut(tp) else {
                    continue;
                };
                match found.get(tp).copied().flatten() {
                    Some(o) => {
                        let released = p.seek(o.offset, o.epoch);
                        p.committed = Some(o.offset);
                        self.budget.release(released);
                    }
                    None => p.need = NeedPosition::Reset,
                }
            }
        }
        let reset: Vec<TopicPartition> = self
            .parts
            .values()
            .filter(|p| p.need == NeedPosition::Reset)
            .map(|p| p.tp.clone())
            .collect();
        if reset.is_empty() {
            return Ok(());
        }
        let ts = match self.config.auto_offset_reset {
            OffsetReset::Earliest => EARLIEST,
            OffsetReset::Latest => LATEST,
            _ => {
                let tp = &reset[0];
                let offset = self
                    .parts
                    .get(tp)
                    .and_then(|p| (p.position >= 0).then_some(p.position));
                // Reported once; the partition is left without a position (not fetched)
                // until the application seeks.
                for tp in &reset {
                    if let Some(p) = self.parts.get_mut(tp) {
                        p.need = NeedPosition::No;
                        p.position = -1;
                        p.awaiting_seek = true;
                    }
                }
                return Err(ConsumerError::NoOffset {
                    topic: tp.topic.to_string(),
                    partition: tp.partition,
                    offset,
                });
            }
        };
        let list: Vec<_> = reset.iter().map(|tp| (tp.clone(), ts)).collect();
        let found =
            offsets::list_offsets(&self.client, self.config.isolation_level.wire(), &list).await?;
        for tp in &reset {
            if let (Some(p), Some(Some(o))) = (self.parts.get_mut(tp), found.get(tp)) {
                tracing::info!(partition = %tp, offset = o.offset, "position reset");
                let released = p.seek(o.offset, -1);
                self.budget.release(released);
            }
        }
        Ok(())
    }

    async fn maybe_refresh_metadata(&mut self) {
        let now = Instant::now();
        let meta = self.client.metadata();
        let needs = self.parts.keys().any(|tp| {
            meta.leader(&tp.topic, tp.partition).is_none()
                || !self.topic_ids.contains_key(&tp.topic)
        });
        let due = self.refresh_metadata_at.is_some_and(|t| t <= now);
        if !(needs || due) {
            return;
        }
        if !due && self.refresh_metadata_at.is_some() {
            return;
        }
        let topics: Vec<String> = self
            .parts
            .keys()
            .map(|tp| tp.topic.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        match self.client.refresh_metadata(&topics).await {
            Ok(meta) => {
                self.refresh_metadata_at = None;
                for t in &topics {
                    if let Some(info) = meta.topic(t) {
                        if let Some(id) = info.topic_id.filter(|id| !id.is_nil()) {
                            let name: Arc<str> = Arc::from(t.as_str());
                            self.topic_ids.insert(Arc::clone(&name), id);
                            self.id_names.insert(id, name);
                        }
                    }
                }
                if self
                    .parts
                    .keys()
                    .any(|tp| meta.leader(&tp.topic, tp.partition).is_none())
                {
                    self.refresh_metadata_at = Some(now + self.config.client.retry_backoff.initial);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "metadata refresh failed");
                self.refresh_metadata_at = Some(now + self.config.client.retry_backoff.initial);
            }
        }
    }

    fn mark_metadata_stale(&mut self) {
        let at = Instant::now() + self.config.client.retry_backoff.initial;
        self.refresh_metadata_at = Some(self.refresh_metadata_at.map_or(at, |t| t.min(at)));
    }

    /// Sends a fetch to every broker that has fetchable partitions and none in flight,
    /// as far as the memory budget allows.
    fn start_fetches(&mut self) {
        let now = Instant::now();
        let meta = self.client.metadata();
        let per_partition_cap = self.config.max_partition_fetch_bytes as usize;
        let mut by_node: BTreeMap<i32, Vec<(TopicPartition, PartitionFetch, u64)>> =
            BTreeMap::new();
        let mut unknown_replica = false;
        for p in self.parts.values_mut() {
            if p.stopped() || p.need != NeedPosition::No || p.position < 0 || p.in_flight {
                continue;
            }
            if p.backoff_until.is_some_and(|t| t > now) {
                continue;
            }
            // Prefetch: keep at most about one more partition fetch buffered.
            if p.buffered >= per_partition_cap {
                continue;
            }
            let Some(leader) = meta.leader(&p.tp.topic, p.tp.partition) else {
                continue;
            };
            if self.config.client_rack.is_none() {
                p.preferred_replica = None;
            }
            let node = match p.preferred_replica {
                Some((n, until)) if until > now && meta.broker(n).is_some() => n,
                Some((_, until)) => {
                    // Expired, or a replica our metadata does not list (any more): the
                    // leader, and a metadata refresh in case the replica is back (Java's
                    // `selectReadReplica`).
                    unknown_replica |= until > now;
                    p.preferred_replica = None;
                    leader.leader
                }
                None => leader.leader,
            };
            if self.inflight_nodes.contains(&node)
                || self.node_backoff.get(&node).is_some_and(|t| *t > now)
            {
                continue;
            }
            by_node.entry(node).or_default().push((
                p.tp.clone(),
                PartitionFetch {
                    fetch_offset: p.fetch_offset,
                    current_leader_epoch: leader.leader_epoch.unwrap_or(-1),
                    last_fetched_epoch: p.last_fetched_epoch,
                    max_bytes: self.config.max_partition_fetch_bytes,
                },
                p.generation,
            ));
        }
        if unknown_replica {
            self.mark_metadata_stale();
        }
        for (node, wanted) in by_node {
            let available = self.budget.available();
            let max_bytes = (self.config.fetch_max_bytes as usize).min(available);
            if max_bytes < per_partition_cap {
                metrics::counter!("kafka_consumer_fetch_budget_waits_total").increment(1);
                break;
            }
            // Only as many partitions as the request's byte limit can fill.
            let n = wanted
                .len()
                .min(max_bytes.div_ceil(per_partition_cap).max(1));
            let wanted = &wanted[..n];
            if !self.budget.try_reserve(max_bytes) {
                break;
            }
            let session = self
                .sessions
                .entry(node)
                .or_insert_with(|| FetchSession::new(17));
            let list: Vec<(TopicPartition, PartitionFetch)> =
                wanted.iter().map(|(tp, f, _)| (tp.clone(), *f)).collect();
            let plan = session.plan(&list);
            let mut generations = HashMap::new();
            for (tp, _, gen) in wanted {
                generations.insert(tp.clone(), *gen);
                if let Some(p) = self.parts.get_mut(tp) {
                    p.in_flight = true;
                }
            }
            // The session's other partitions (none: `covers` is exactly `wanted`).
            self.inflight_nodes.insert(node);
            let client = self.client.clone();
            let config = Arc::clone(&self.config);
            let ids = self.topic_ids.clone();
            let reserved = max_bytes;
            self.inflight.spawn(async move {
                let sent_at = Instant::now();
                let result = send_fetch(&client, &config, node, &plan, &ids, reserved as i32).await;
                FetchDone {
                    node,
                    reserved,
                    plan,
                    generations,
                    sent_at,
                    result,
                }
            });
        }
    }

    fn handle_fetch(&mut self, done: FetchDone) {
        let now = Instant::now();
        let meta = self.client.metadata();
        self.inflight_nodes.remove(&done.node);
        for tp in &done.plan.covers {
            if let Some(p) = self.parts.get_mut(tp) {
                p.in_flight = false;
            }
        }
        let session = self.sessions.entry(done.node).or_default();
        let (resp, version) = match done.result {
            Ok(r) => r,
            Err(e) => {
                session.handle_failure();
                self.budget.settle(done.reserved, 0);
                tracing::debug!(node = done.node, error = %e, "fetch failed");
                metrics::counter!("kafka_consumer_fetch_errors_total").increment(1);
                self.client.report(&e);
                self.node_backoff
                    .insert(done.node, now + self.config.client.retry_backoff.initial);
                for p in self.parts.values_mut() {
                    if p.preferred_replica.is_some_and(|(n, _)| n == done.node) {
                        p.preferred_replica = None;
                    }
                }
                self.mark_metadata_stale();
                return;
            }
        };
        metrics::histogram!("kafka_consumer_fetch_latency_seconds")
            .record(now.duration_since(done.sent_at).as_secs_f64());
        let top = KafkaCode::from_i16(resp.error_code);
        if !session.handle_response(top, resp.session_id) {
            self.budget.settle(done.reserved, 0);
            tracing::debug!(node = done.node, code = %top, "fetch session reset");
            if !matches!(
                top,
                KafkaCode::FetchSessionIdNotFound | KafkaCode::InvalidFetchSessionEpoch
            ) {
                self.node_backoff
                    .insert(done.node, now + self.config.client.retry_backoff.initial);
            }
            return;
        }
        // Every partition of the session was served (an incremental response omits those
        // without news).
        for (tp, gen) in &done.generations {
            if let Some(p) = self.parts.get_mut(tp) {
                if p.generation == *gen {
                    p.last_fetch = Some(now);
                }
            }
        }
        let mut held = 0usize;
        let mut stale_metadata = false;
        for topic in resp.responses {
            let name: Option<Arc<str>> = if version >= 13 {
                self.id_names.get(&topic.topic_id).cloned()
            } else {
                Some(Arc::from(topic.topic.as_str()))
            };
            let Some(name) = name else {
                continue;
            };
            for pd in topic.partitions {
                let tp = TopicPartition {
                    topic: Arc::clone(&name),
                    partition: pd.partition_index,
                };
                let Some(p) = self.parts.get_mut(&tp) else {
                    continue;
                };
                if done.generations.get(&tp) != Some(&p.generation) {
                    continue;
                }
                p.last_fetch = Some(now);
                if pd.high_watermark >= 0 {
                    p.high_watermark = pd.high_watermark;
                }
                if pd.last_stable_offset >= 0 {
                    p.last_stable_offset = pd.last_stable_offset;
                }
                if pd.log_start_offset >= 0 {
                    p.log_start_offset = pd.log_start_offset;
                }
                let code = KafkaCode::from_i16(pd.error_code);
                let from_follower = p.preferred_replica.is_some();
                match code {
                    KafkaCode::None => {}
                    KafkaCode::OffsetOutOfRange if from_follower => {
                        // The follower lags: go back to the leader (KIP-392).
                        p.preferred_replica = None;
                        continue;
                    }
                    KafkaCode::OffsetOutOfRange => {
                        tracing::warn!(partition = %tp, position = p.position, "offset out of range");
                        let released = p.invalidate(NeedPosition::Reset);
                        self.budget.release(released);
                        continue;
                    }
                    c if c.needs_metadata_refresh() || c.is_retriable() => {
                        p.preferred_replica = None;
                        p.backoff_until = Some(now + self.config.client.retry_backoff.initial);
                        stale_metadata |= c.needs_metadata_refresh();
                        tracing::debug!(partition = %tp, code = %c, "fetch partition error");
                        continue;
                    }
                    c => {
                        p.backoff_until = Some(now + self.config.client.retry_backoff.max);
                        self.errors.push_back(ConsumerError::Partition {
                            what: "fetch",
                            topic: tp.topic.to_string(),
                            partition: tp.partition,
                            code: c,
                        });
                        continue;
                    }
                }
                // KIP-320: the leader says our log diverged from its log.
                if pd.diverging_epoch.epoch >= 0 && pd.diverging_epoch.end_offset >= 0 {
                    let end = pd.diverging_epoch.end_offset;
                    metrics::counter!("kafka_consumer_log_truncations_total").increment(1);
                    let consumed_lost =
                        end < p.position && self.config.auto_offset_reset == OffsetReset::None;
                    if consumed_lost {
                        self.errors.push_back(ConsumerError::LogTruncation {
                            topic: tp.topic.to_string(),
                            partition: tp.partition,
                            position: p.position,
                            epoch: pd.diverging_epoch.epoch,
                            end_offset: end,
                        });
                    }
                    tracing::warn!(
                        partition = %tp, position = p.position, epoch = pd.diverging_epoch.epoch,
                        end_offset = end, "log truncation detected; moving to the divergence point"
                    );
                    let pos = end.min(p.position);
                    let released = p.seek(pos, pd.diverging_epoch.epoch);
                    p.awaiting_seek = consumed_lost;
                    self.budget.release(released);
                    continue;
                }
                let replica = pd.preferred_read_replica.0;
                if replica >= 0 && replica != done.node {
                    p.preferred_replica = Some((replica, now + self.config.metadata_max_age));
                    if meta.broker(replica).is_none() {
                        // A replica our metadata does not list, typically a broker that was
                        // down when we last refreshed. Fetching at once would go back to the
                        // leader (we have no address for the replica), which names it again
                        // and sends no records: a busy loop until some refresh happens to
                        // run. Refresh first, and hold the partition that long.
                        p.backoff_until = Some(now + self.config.client.retry_backoff.initial);
                        stale_metadata = true;
                    }
                    continue;
                }
                let Some(data) = pd.records else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                let Some((next, epoch)) = scan_batches(&data) else {
                    continue;
                };
                if next <= p.fetch_offset {
                    continue;
                }
                let aborted: Vec<(i64, i64)> = pd
                    .aborted_transactions
                    .unwrap_or_default()
                    .iter()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect();
                held += data.len();
                let had = p.has_data();
                p.push(data, next, epoch, &aborted);
                p.fetched_from = Some(done.node);
                if !had {
                    self.drain_order.push_back(tp);
                }
            }
        }
        self.budget.settle(done.reserved, held);
        if stale_metadata {
            self.mark_metadata_stale();
        }
        if self.next_lag_metrics.is_none_or(|t| now >= t) {
            self.next_lag_metrics = Some(now + Duration::from_secs(1));
            // Records handed out by `recv` from a batch not yet finished are reported at
            // least this often.
            self.handed_out.report();
            self.record_lag();
        }
    }

    /// Lag metrics: per assigned partition (labels `topic` and `partition`: the label set is
    /// bounded by the assignment; past [`MAX_LAG_GAUGES`] partitions only the totals are
    /// kept) and the sum and maximum. Updated at most once a second, when a fetch returns.
    fn record_lag(&self) {
        let committed = self.config.isolation_level == crate::IsolationLevel::ReadCommitted;
        let per_partition = self.parts.len() <= MAX_LAG_GAUGES;
        let (mut sum, mut max) = (0i64, 0i64);
        for p in self.parts.values() {
            let end = if committed {
                p.last_stable_offset
            } else {
                p.high_watermark
            };
            if p.need != NeedPosition::No || end < 0 {
                continue;
            }
            let lag = (end - p.position).max(0);
            sum += lag;
            max = max.max(lag);
            if per_partition {
                lag_gauge(&p.tp).set(lag as f64);
            }
        }
        metrics::gauge!("kafka_consumer_lag_sum").set(sum as f64);
        metrics::gauge!("kafka_consumer_lag_max").set(max as f64);
    }

    // ---------------------------------------------------------------- helpers

    fn part_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartState> {
        self.parts.get_mut(tp).ok_or_else(|| not_assigned(tp))
    }

    fn group_required(&self, what: &'static str) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or(ConsumerError::NoGroup(what))
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(ConsumerError::Closed)
        } else {
            Ok(())
        }
    }

    /// Commits (with auto-commit), leaves the group and stops. In-flight fetches are
    /// abandoned.
    pub async fn close(mut self) -> Result<()> {
        let r = self.auto_commit_now().await;
        if let Some(g) = &mut self.group {
            g.leave(&self.client).await;
        }
        self.closed = true;
        self.inflight.abort_all();
        r
    }
}

/// How long the LeaveGroup sent by `Drop` may take (it runs in the background).
const LEAVE_ON_DROP_TIMEOUT: Duration = Duration::from_secs(5);

/// Dropping a consumer without [`close`](Consumer::close) commits nothing, but still leaves
/// the group, best effort: the request is spawned on the tokio runtime of the dropping
/// thread (none: nothing is sent, and the group waits for `session.timeout.ms`), bounded by
/// [`LEAVE_ON_DROP_TIMEOUT`]. Static members do not leave, as on `close`.
impl Drop for Consumer {
    fn drop(&mut self) {
        self.handed_out.report();
        self.inflight.abort_all();
        let Some(g) = &mut self.group else {
            return;
        };
        let Some(leave) = g.begin_leave(&self.client, "consumer dropped without close") else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if tokio::time::timeout(LEAVE_ON_DROP_TIMEOUT, leave)
                        .await
                        .is_err()
                    {
                        tracing::debug!("leave group on drop timed out");
                    }
                });
            }
            Err(_) => tracing::debug!(
                "consumer dropped outside a tokio runtime: the group waits for session.timeout.ms"
            ),
        }
    }
}

/// Records and bytes handed to the application and not yet added to
/// `kafka_consumer_records_total` / `_bytes_total`: counted here per record, reported once per
/// batch (a metrics call per record would cost as much as decoding it).
///
/// Bytes are the uncompressed records section of each batch records were handed out from,
/// counted when its first record leaves (a batch a seek entered midway counts whole).
#[derive(Debug, Default)]
struct HandedOut {
    records: u64,
    bytes: u64,
    /// Bytes of the batch now in `Consumer::ready`, until its first record is handed out.
    ready_bytes: u64,
}

impl HandedOut {
    /// A whole batch handed out (`poll_batches`).
    fn batch(&mut self, b: &FetchedBatch) {
        self.records += if b.from <= b.batch.base_offset() {
            b.batch.record_count() as u64
        } else {
            b.records().count() as u64
        };
        self.bytes += b.batch.records_bytes().len() as u64;
    }

    /// A batch decoded into `Consumer::ready` for `recv`/`poll`.
    fn ready_batch(&mut self, b: &FetchedBatch) {
        self.ready_bytes = b.batch.records_bytes().len() as u64;
    }

    /// One record of the ready batch handed out.
    fn record(&mut self) {
        self.records += 1;
        self.bytes += std::mem::take(&mut self.ready_bytes);
    }

    fn report(&mut self) {
        if self.records > 0 {
            metrics::counter!("kafka_consumer_records_total").increment(self.records);
            metrics::counter!("kafka_consumer_bytes_total").increment(self.bytes);
            self.records = 0;
            self.bytes = 0;
        }
    }
}

/// Above this many assigned partitions the lag is reported as totals only.
const MAX_LAG_GAUGES: usize = 1000;

/// `kafka_consumer_lag{topic, partition}`.
fn lag_gauge(tp: &TopicPartition) -> metrics::Gauge {
    metrics::gauge!(
        "kafka_consumer_lag",
        "topic" => tp.topic.to_string(),
        "partition" => tp.partition.to_string()
    )
}

fn not_assigned(tp: &TopicPartition) -> ConsumerError {
    ConsumerError::NotAssigned {
        topic: tp.topic.to_string(),
        partition: tp.partition,
    }
}

/// One fetch request to `node`, at the highest version both sides speak (v12 when a topic
/// id is unknown, as v13+ names topics by id only).
async fn send_fetch(
    client: &Client,
    config: &ConsumerConfig,
    node: i32,
    plan: &FetchPlan,
    ids: &HashMap<Arc<str>, Uuid>,
    max_bytes: i32,
) -> std::result::Result<(FetchResponse, i16), ClientError> {
    let conn = client
        .broker_connection(node, ConnectionClass::Fetch)
        .await?;
    let mut version = conn.max_version(ApiKey::Fetch as i16).unwrap_or(4);
    let id_of = |t: &Arc<str>| ids.get(t).copied().unwrap_or_default();
    if version >= 13
        && plan
            .send
            .iter()
            .map(|(tp, _)| &tp.topic)
            .chain(plan.forget.iter().map(|tp| &tp.topic))
            .any(|t| id_of(t).is_nil())
    {
        version = 12;
    }
    let mut topics: BTreeMap<&Arc<str>, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, f) in &plan.send {
        topics.entry(&tp.topic).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(f.fetch_offset)
                .with_current_leader_epoch(if version >= 9 {
                    f.current_leader_epoch
                } else {
                    -1
                })
                .with_last_fetched_epoch(if version >= 12 {
                    f.last_fetched_epoch
                } else {
                    -1
                })
                .with_log_start_offset(-1)
                .with_partition_max_bytes(f.max_bytes),
        );
    }
    let name = |t: &Arc<str>| TopicName(StrBytes::from_string(t.to_string()));
    let mut forgotten: BTreeMap<&Arc<str>, Vec<i32>> = BTreeMap::new();
    for tp in &plan.forget {
        forgotten.entry(&tp.topic).or_default().push(tp.partition);
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(config.fetch_max_wait.as_millis() as i32)
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(max_bytes)
        .with_isolation_level(config.isolation_level.wire())
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(name(t))
                        .with_topic_id(id_of(t))
                        .with_partitions(parts)
                })
                .collect(),
        );
    if version <= 14 {
        req = req.with_replica_id(BrokerId(-1));
    }
    if version >= 7 {
        req = req
            .with_session_id(plan.session_id)
            .with_session_epoch(plan.epoch)
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(t, p)| {
                        ForgottenTopic::default()
                            .with_topic(name(t))
                            .with_topic_id(id_of(t))
                            .with_partitions(p)
                    })
                    .collect(),
            );
    }
    if version >= 11 {
        if let Some(rack) = &config.client_rack {
            req = req.with_rack_id(StrBytes::from_string(rack.clone()));
        }
    }
    let resp = conn
        .send_at(req, version)
        .await
        .map_err(|e| ClientError::net(e, ErrorContext::new().broker(node).api("Fetch")))?;
    Ok((resp, version))
}

/// The `ours` consume entry point for the benchmark harness: reads `records` records from
/// the beginning of every partition of `topic` (manual assignment, no group) and returns how
/// many were read and the bytes of their keys and values. Uses the batch path.
pub async fn consume_count(bootstrap: &str, topic: &str, records: u64) -> Result<(u64, u64)> {
    let client = kafka_core::ClientConfig::new([bootstrap])?;
    let config = ConsumerConfig::builder(client)
        .auto_offset_reset(OffsetReset::Earliest)
        .max_poll_records(100_000)
        .build()?;
    let mut consumer = Consumer::connect(config).await?;
    let meta = consumer.client().refresh_metadata(&[topic]).await?;
    let parts: Vec<TopicPartition> = meta
        .partitions(topic)
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    if parts.is_empty() {
        return Err(ConsumerError::Config(format!(
            "topic {topic} has no partitions"
        )));
    }
    consumer.assign(parts)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < records {
        let batches = consumer.poll_batches(Duration::from_secs(30)).await?;
        if batches.is_empty() {
            return Err(ConsumerError::Config(format!(
                "{topic} has only {n} of the {records} records asked for (nothing new for 30 s)"
            )));
        }
        for b in batches {
            for r in b.records() {
                let r = r.map_err(|e| ConsumerError::Corrupt {
                    topic: topic.to_owned(),
                    partition: b.topic_partition().partition,
                    offset: -1,
                    source: e,
                })?;
                n += 1;
                bytes += (r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len)) as u64;
            }
        }
    }
    consumer.close().await.ok();
    Ok((n, bytes))
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>(_: T) {}
    fn f(c: &mut Consumer) {
        is_send(c.recv());
        is_send(c.poll(Duration::ZERO));
    }
    let _ = f;
    let _ = TimestampKind::CreateTime;
    let _ = TimestampType::CreateTime;
    let _: Option<Bytes> = None;
    let _ = GroupProtocol::Classic;
}
