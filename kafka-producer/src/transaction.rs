//! Transactions (KIP-98), client protocol v1: InitProducerId, AddPartitionsToTxn before the
//! first batch of each partition, AddOffsetsToTxn + TxnOffsetCommit for consumed offsets
//! (KIP-447 group metadata), EndTxn.
//!
//! Transaction protocol v2 (KIP-890: partitions added implicitly by Produce v12+, EndTxn v5
//! bumping the epoch every transaction) is not used yet: requests are capped at the last
//! versions before it (Produce 11, AddPartitionsToTxn 3, TxnOffsetCommit 4, EndTxn 4), which
//! every broker from 0.11 to 4.x accepts.
//!
//! Recovery, as in the Java client: [`Error::AbortableTransaction`] → call
//! [`Producer::abort_transaction`] and begin again; [`Error::Fenced`] and other fatal errors →
//! close the producer (a newer instance owns the transactional id).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafka_core::client::{ConnectionClass, ErrorContext, Target};
use kafka_core::protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_core::protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_core::protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_core::protocol::protocol::StrBytes;
use kafka_core::KafkaCode;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::{Inner, Producer};

/// Where a transactional producer stands.
#[derive(Debug, Clone)]
pub(crate) enum TxnState {
    NotTransactional,
    Uninitialized,
    Ready,
    InTransaction,
    Committing,
    Aborting,
    Abortable(Error),
    Fatal(Error),
}

impl std::fmt::Display for TxnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TxnState::NotTransactional => "not transactional",
            TxnState::Uninitialized => "uninitialized (call init_transactions)",
            TxnState::Ready => "ready",
            TxnState::InTransaction => "in a transaction",
            TxnState::Committing => "committing",
            TxnState::Aborting => "aborting",
            TxnState::Abortable(_) => "failed, must abort",
            TxnState::Fatal(_) => "fatal",
        })
    }
}

/// A consumer's group membership, sent with offsets so that the group coordinator fences
/// zombie consumers (KIP-447). Take it from the consumer; [`ConsumerGroupMetadata::new`] gives
/// the fields of a consumer outside any generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation the consumer is in (-1: none).
    pub generation_id: i32,
    /// The member id ("" when none).
    pub member_id: String,
    /// The static member id (`group.instance.id`), if any.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata of a group without generation information.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn is_retriable_txn(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::ConcurrentTransactions
            | KafkaCode::CoordinatorLoadInProgress
            | KafkaCode::CoordinatorNotAvailable
            | KafkaCode::NotCoordinator
            | KafkaCode::RequestTimedOut
    ) || code.is_retriable()
}

fn code_error(api: &'static str, code: KafkaCode) -> Error {
    match code {
        KafkaCode::ProducerFenced | KafkaCode::InvalidProducerEpoch => Error::Fenced { code },
        _ => Error::Coordinator { api, code },
    }
}

/// Sends a request to the transaction coordinator at a version at most `cap`, retrying
/// coordinator moves and `CONCURRENT_TRANSACTIONS` until `default.api.timeout.ms`.
async fn to_coordinator<R, F>(
    inner: &Inner,
    target: Target,
    api: &'static str,
    cap: i16,
    make: F,
    code_of: fn(&R::Response) -> i16,
) -> Result<R::Response>
where
    R: kafka_core::protocol::protocol::Request + 'static,
    R::Response: 'static,
    F: Fn() -> R,
{
    let client = &inner.client;
    let deadline = Instant::now() + inner.config.client.default_api_timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        let (node, conn) = client.connection(&target, ConnectionClass::Group).await?;
        let version = conn.max_version(R::KEY).map(|v| v.min(cap));
        let Some(version) = version else {
            return Err(Error::TransactionState(format!(
                "broker {node} does not support {api}"
            )));
        };
        let resp = match conn.send_at(make(), version).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() && Instant::now() + delay < deadline => {
                tracing::debug!(api, error = %e, "retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => {
                return Err(kafka_core::client::Error::net(
                    e,
                    ErrorContext::new().broker(node).api(api),
                )
                .into())
            }
        };
        let code = KafkaCode::from_i16(code_of(&resp));
        if code.is_ok() {
            return Ok(resp);
        }
        if matches!(
            code,
            KafkaCode::NotCoordinator | KafkaCode::CoordinatorNotAvailable
        ) {
            if let Target::Coordinator(kind, key) = &target {
                client.invalidate_coordinator(*kind, key);
            }
        }
        if is_retriable_txn(code) && Instant::now() + delay < deadline {
            tracing::debug!(api, ?code, "retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
            continue;
        }
        return Err(code_error(api, code));
    }
}

/// AddPartitionsToTxn (v3 at most) for partitions about to get their first batch.
pub(crate) async fn add_partitions(inner: &Inner, parts: &[(Arc<str>, i32)]) -> Result<()> {
    let txn_id = inner.config.transactional_id.clone().unwrap_or_default();
    let producer = inner.lock_acc().producer;
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        match topics.iter_mut().find(|x| *x.name.0 == **t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(str(t)))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    let resp = to_coordinator(
        inner,
        Target::transaction(txn_id.clone()),
        "AddPartitionsToTxn",
        3,
        || {
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(str(&txn_id)))
                .with_v3_and_below_producer_id(ProducerId(producer.id))
                .with_v3_and_below_producer_epoch(producer.epoch)
                .with_v3_and_below_topics(topics.clone())
        },
        |r| {
            // v3 and below carry codes per partition only: report the first failure.
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .map(|p| p.partition_error_code)
                .find(|c| *c != 0 && *c != i16::from(KafkaCode::OperationNotAttempted))
                .or_else(|| {
                    r.results_by_topic_v3_and_below
                        .iter()
                        .flat_map(|t| &t.results_by_partition)
                        .map(|p| p.partition_error_code)
                        .find(|c| *c != 0)
                })
                .unwrap_or(0)
        },
    )
    .await?;
    let _ = resp;
    inner.txn_started.store(true, Ordering::Release);
    Ok(())
}

async fn end_txn(inner: &Inner, commit: bool) -> Result<()> {
    let txn_id = inner.config.transactional_id.clone().unwrap_or_default();
    let producer = inner.lock_acc().producer;
    to_coordinator(
        inner,
        Target::transaction(txn_id.clone()),
        "EndTxn",
        4,
        || {
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(str(&txn_id)))
                .with_producer_id(ProducerId(producer.id))
                .with_producer_epoch(producer.epoch)
                .with_committed(commit)
        },
        |r| r.error_code,
    )
    .await?;
    Ok(())
}

impl Producer {
    fn txn_state(&self) -> TxnState {
        self.inner
            .txn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_txn_state(&self, s: TxnState) {
        *self.inner.txn.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    fn require_transactional(&self) -> Result<String> {
        self.inner.config.transactional_id.clone().ok_or_else(|| {
            Error::TransactionState("the producer has no transactional.id".to_owned())
        })
    }

    /// Registers the transactional id with its coordinator (fencing any older producer with
    /// the same id, and aborting its open transaction), and gets the producer id and epoch.
    /// Call once, before the first [`begin_transaction`](Self::begin_transaction).
    pub async fn init_transactions(&self) -> Result<()> {
        self.require_transactional()?;
        let _serial = self.inner.txn_calls.lock().await;
        match self.txn_state() {
            TxnState::Uninitialized => {}
            TxnState::Fatal(e) => return Err(Error::Fatal { cause: Arc::new(e) }),
            other => {
                return Err(Error::TransactionState(format!(
                    "init_transactions called when {other}"
                )))
            }
        }
        let id = crate::sender::init_producer_id(&self.inner, None)
            .await
            .map_err(|e| match e.kafka_code() {
                Some(code @ (KafkaCode::ProducerFenced | KafkaCode::InvalidProducerEpoch)) => {
                    Error::Fenced { code }
                }
                _ => Error::from(e),
            })?;
        let f = self.inner.lock_acc().apply_new_identity(id);
        self.inner.apply(f);
        self.set_txn_state(TxnState::Ready);
        tracing::info!(
            producer_id = id.id,
            epoch = id.epoch,
            "transactions initialised"
        );
        Ok(())
    }

    /// Starts a transaction: records sent from now on are part of it.
    pub fn begin_transaction(&self) -> Result<()> {
        self.require_transactional()?;
        let mut t = self.inner.txn.lock().unwrap_or_else(|e| e.into_inner());
        match &*t {
            TxnState::Ready => {
                *t = TxnState::InTransaction;
                self.inner.txn_started.store(false, Ordering::Release);
                Ok(())
            }
            TxnState::Fatal(e) => Err(Error::Fatal {
                cause: Arc::new(e.clone()),
            }),
            other => Err(Error::TransactionState(format!(
                "begin_transaction called when {other}"
            ))),
        }
    }

    /// Adds consumed offsets to the transaction: they are committed for `group` if and only if
    /// the transaction commits (consume-transform-produce, exactly once). `offsets` are
    /// `(topic, partition, next offset to consume, leader epoch if known)`.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(String, i32, i64, Option<i32>)],
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let txn_id = self.require_transactional()?;
        let _serial = self.inner.txn_calls.lock().await;
        match self.txn_state() {
            TxnState::InTransaction => {}
            TxnState::Abortable(e) => {
                return Err(Error::AbortableTransaction { cause: Arc::new(e) })
            }
            other => {
                return Err(Error::TransactionState(format!(
                    "send_offsets_to_transaction called when {other}"
                )))
            }
        }
        let producer = self.inner.lock_acc().producer;
        let r = async {
            to_coordinator(
                &self.inner,
                Target::transaction(txn_id.clone()),
                "AddOffsetsToTxn",
                4,
                || {
                    AddOffsetsToTxnRequest::default()
                        .with_transactional_id(TransactionalId(str(&txn_id)))
                        .with_producer_id(ProducerId(producer.id))
                        .with_producer_epoch(producer.epoch)
                        .with_group_id(GroupId(str(&group.group_id)))
                },
                |r| r.error_code,
            )
            .await?;
            self.inner.txn_started.store(true, Ordering::Release);
            let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
            for (t, p, offset, epoch) in offsets {
                let part = TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(epoch.unwrap_or(-1));
                match topics.iter_mut().find(|x| &*x.name.0 == t.as_str()) {
                    Some(x) => x.partitions.push(part),
                    None => topics.push(
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(str(t)))
                            .with_partitions(vec![part]),
                    ),
                }
            }
            to_coordinator(
                &self.inner,
                Target::group(group.group_id.clone()),
                "TxnOffsetCommit",
                4,
                || {
                    TxnOffsetCommitRequest::default()
                        .with_transactional_id(TransactionalId(str(&txn_id)))
                        .with_group_id(GroupId(str(&group.group_id)))
                        .with_producer_id(ProducerId(producer.id))
                        .with_producer_epoch(producer.epoch)
                        .with_generation_id(group.generation_id)
                        .with_member_id(str(&group.member_id))
                        .with_group_instance_id(group.group_instance_id.as_deref().map(str))
                        .with_topics(topics.clone())
                },
                |r| {
                    r.topics
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .map(|p| p.error_code)
                        .find(|c| *c != 0)
                        .unwrap_or(0)
                },
            )
            .await?;
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = &r {
            self.fail_transaction(e.clone());
        }
        r
    }

    fn fail_transaction(&self, e: Error) {
        if e.is_fatal() {
            self.inner.set_fatal(e);
        } else {
            self.inner.set_abortable(e);
        }
    }

    /// Commits the transaction: sends everything buffered, waits for it, then asks the
    /// coordinator to commit. If a record of the transaction failed, returns
    /// [`Error::AbortableTransaction`]: abort and retry the work.
    pub async fn commit_transaction(&self) -> Result<()> {
        self.require_transactional()?;
        let _serial = self.inner.txn_calls.lock().await;
        match self.txn_state() {
            TxnState::InTransaction => {}
            TxnState::Abortable(e) => {
                return Err(Error::AbortableTransaction { cause: Arc::new(e) })
            }
            TxnState::Fatal(e) => return Err(Error::Fatal { cause: Arc::new(e) }),
            other => {
                return Err(Error::TransactionState(format!(
                    "commit_transaction called when {other}"
                )))
            }
        }
        self.set_txn_state(TxnState::Committing);
        self.flush().await?;
        match self.txn_state() {
            TxnState::Committing => {}
            TxnState::Abortable(e) => {
                return Err(Error::AbortableTransaction { cause: Arc::new(e) })
            }
            TxnState::Fatal(e) => return Err(Error::Fatal { cause: Arc::new(e) }),
            other => {
                return Err(Error::TransactionState(format!(
                    "transaction changed state to {other} while committing"
                )))
            }
        }
        if self.inner.txn_started.load(Ordering::Acquire) {
            if let Err(e) = end_txn(&self.inner, true).await {
                if e.is_fatal() {
                    self.inner.set_fatal(e.clone());
                } else {
                    // The outcome is unknown (a timeout) or refused: the safe way on is to
                    // abort (the coordinator keeps whichever decision it made first).
                    self.set_txn_state(TxnState::Abortable(e.clone()));
                }
                return Err(e);
            }
        }
        self.inner.lock_acc().end_transaction();
        self.set_txn_state(TxnState::Ready);
        Ok(())
    }

    /// Aborts the transaction: records not sent yet fail with [`Error::TransactionAborted`],
    /// those in flight finish, and the coordinator writes abort markers so read_committed
    /// consumers never see any of it. Afterwards a new transaction can begin.
    pub async fn abort_transaction(&self) -> Result<()> {
        self.require_transactional()?;
        let _serial = self.inner.txn_calls.lock().await;
        match self.txn_state() {
            TxnState::InTransaction | TxnState::Abortable(_) | TxnState::Committing => {}
            TxnState::Fatal(e) => return Err(Error::Fatal { cause: Arc::new(e) }),
            other => {
                return Err(Error::TransactionState(format!(
                    "abort_transaction called when {other}"
                )))
            }
        }
        self.set_txn_state(TxnState::Aborting);
        let f = self
            .inner
            .lock_acc()
            .fail_unsent(&Error::TransactionAborted);
        self.inner.apply(f);
        self.flush().await?;
        if self.inner.txn_started.load(Ordering::Acquire) {
            if let Err(e) = end_txn(&self.inner, false).await {
                if e.is_fatal() {
                    self.inner.set_fatal(e.clone());
                } else {
                    self.set_txn_state(TxnState::Abortable(e.clone()));
                }
                return Err(e);
            }
        }
        // A sequence problem during the transaction: get a fresh epoch (KIP-360) so the next
        // transaction starts clean.
        if self.inner.lock_acc().bump_pending {
            let current = self.inner.lock_acc().producer;
            let id = crate::sender::init_producer_id(&self.inner, Some(current)).await?;
            let f = self.inner.lock_acc().apply_new_identity(id);
            self.inner.apply(f);
        }
        self.inner.lock_acc().end_transaction();
        self.set_txn_state(TxnState::Ready);
        self.inner.wake.notify_one();
        Ok(())
    }
}
