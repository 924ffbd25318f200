//! The background side: one sender task that decides what to send, and one writer task per
//! broker that queues produce requests on that broker's connection in order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafka_core::client::{ClusterMetadata, ConnectionClass, Target};
use kafka_core::net::{Connection, NetError};
use kafka_core::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_core::protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_core::protocol::protocol::StrBytes;
use kafka_core::KafkaCode;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::accumulator::{Batch, BatchResult, Followups, Leaders, ProduceJob, ProducerIdentity};
use crate::config::Acks;
use crate::error::Error;
use crate::Inner;

struct MetaLeaders(Arc<ClusterMetadata>);

impl Leaders for MetaLeaders {
    fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.0.leader(topic, partition).map(|l| l.leader)
    }
}

/// Runs until the producer is closed and everything has an outcome.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut workers: HashMap<i32, mpsc::UnboundedSender<ProduceJob>> = HashMap::new();
    let mut init_attempt = 0u32;
    let mut last_meta: Option<Arc<ClusterMetadata>> = None;
    loop {
        if let Some(e) = inner.fatal() {
            let f = inner.lock_acc().fail_unsent(&e);
            inner.apply(f);
        }
        // Idempotence without transactions: get a producer id before the first batch.
        let needs_id = inner.config.idempotence
            && inner.config.transactional_id.is_none()
            && inner.lock_acc().producer.id < 0;
        if needs_id && !inner.lock_acc().is_empty() {
            match init_producer_id(&inner, None).await {
                Ok(id) => {
                    init_attempt = 0;
                    let f = inner.lock_acc().apply_new_identity(id);
                    inner.apply(f);
                }
                Err(e)
                    if e.is_retriable()
                        || matches!(e, kafka_core::client::Error::Timeout { .. }) =>
                {
                    // Fall through: batches still expire by delivery.timeout.ms meanwhile.
                    init_attempt += 1;
                    tracing::warn!(error = %e, attempt = init_attempt, "InitProducerId failed; will retry");
                }
                Err(e) => {
                    inner.set_fatal(Error::from(e));
                    continue;
                }
            }
        }
        // Epoch bump (KIP-360) once nothing is in flight.
        let bump = {
            let acc = inner.lock_acc();
            acc.bump_pending && acc.in_flight() == 0
        };
        if bump {
            if inner.config.transactional_id.is_some() {
                // Transactional producers bump through abort_transaction.
            } else {
                let current = inner.lock_acc().producer;
                match init_producer_id(&inner, Some(current)).await {
                    Ok(id) => {
                        tracing::info!(
                            producer_id = id.id,
                            epoch = id.epoch,
                            "producer epoch bumped"
                        );
                        let f = inner.lock_acc().apply_new_identity(id);
                        inner.apply(f);
                    }
                    Err(e) if e.is_retriable() => {
                        tokio::time::sleep(inner.config.client.retry_backoff.initial).await;
                        continue;
                    }
                    Err(e) => {
                        inner.set_fatal(Error::from(e));
                        continue;
                    }
                }
            }
        }
        // Transactions (protocol v1): partitions join the transaction before their data.
        if inner.config.transactional_id.is_some() && inner.txn_in_progress() {
            let to_add = inner.lock_acc().partitions_to_add();
            if !to_add.is_empty() && inner.tv2.load(Ordering::Acquire) {
                // Transaction protocol v2: the broker adds a partition when its first
                // transactional batch arrives (Produce v12+).
                inner.lock_acc().mark_added(&to_add);
                inner.txn_started.store(true, Ordering::Release);
            } else if !to_add.is_empty() {
                match crate::transaction::add_partitions(&inner, &to_add).await {
                    Ok(()) => inner.lock_acc().mark_added(&to_add),
                    Err(e) if e.is_fatal() => inner.set_fatal(e),
                    Err(Error::Coordinator { code, .. }) if is_txn_retriable(code) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Err(e) => inner.set_abortable(e),
                }
            }
        }

        let now = Instant::now();
        let meta = inner.client.metadata();
        if !last_meta.as_ref().is_some_and(|m| Arc::ptr_eq(m, &meta)) {
            inner.lock_acc().grow_topics(|t| meta.partitions(t).len());
            last_meta = Some(meta.clone());
        }
        let (jobs, next_wake, unknown_leader, expire_at, f) = {
            let mut acc = inner.lock_acc();
            let mut f = Followups::default();
            let expire_at = acc.expire(now, &mut f);
            let (jobs, next, unknown) = acc.drain(now, &MetaLeaders(meta));
            (jobs, next, unknown, expire_at, f)
        };
        inner.apply(f);
        if unknown_leader {
            inner.refresh_metadata_soon();
        }
        for job in jobs {
            inner.stats.requests.fetch_add(1, Ordering::Relaxed);
            for b in &job.batches {
                metrics::histogram!("kafka_producer_batch_bytes").record(b.bytes.len() as f64);
                metrics::histogram!("kafka_producer_batch_records").record(f64::from(b.records));
            }
            let node = job.node;
            let tx = workers.entry(node).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(broker_writer(inner.clone(), node, rx));
                tx
            });
            if let Err(mpsc::error::SendError(job)) = tx.send(job) {
                // The writer ended (cannot happen while we hold `inner`); answer the batches.
                finish_job_err(&inner, job, "producer writer ended".into(), false);
            }
        }
        let (closing, empty) = {
            let acc = inner.lock_acc();
            (acc.closing, acc.is_empty())
        };
        if closing && empty {
            break;
        }
        if inner.closed_hard.load(Ordering::Acquire) {
            let f = inner.lock_acc().fail_unsent(&Error::Closed);
            inner.apply(f);
            if inner.lock_acc().is_empty() {
                break;
            }
        }
        let wake_at = [next_wake, expire_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(1))
            .min(now + Duration::from_secs(1));
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
        }
    }
    inner.progress.notify_waiters();
}

fn is_txn_retriable(code: KafkaCode) -> bool {
    matches!(
        code,
        KafkaCode::ConcurrentTransactions
            | KafkaCode::CoordinatorLoadInProgress
            | KafkaCode::CoordinatorNotAvailable
            | KafkaCode::NotCoordinator
    ) || code.is_retriable()
}

/// Gets a producer id: a new one (`current` None), or the next epoch of `current` (KIP-360,
/// InitProducerId v3+), or a new id on brokers too old to bump.
pub(crate) async fn init_producer_id(
    inner: &Inner,
    current: Option<ProducerIdentity>,
) -> Result<ProducerIdentity, kafka_core::client::Error> {
    let client = &inner.client;
    let txn_id = inner.config.transactional_id.clone();
    let target = match &txn_id {
        Some(id) => Target::transaction(id.clone()),
        None => Target::AnyBroker,
    };
    let timeout_ms = inner
        .config
        .transaction_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    client
        .retry("InitProducerId", || {
            let target = target.clone();
            let txn_id = txn_id.clone();
            async move {
                let (node, conn) = client.connection(&target, ConnectionClass::Produce).await?;
                let version = conn.max_version(22).unwrap_or(0);
                let mut req = InitProducerIdRequest::default()
                    .with_transactional_id(
                        txn_id.map(|t| TransactionalId(StrBytes::from_string(t))),
                    )
                    .with_transaction_timeout_ms(timeout_ms);
                if let Some(c) = current.filter(|_| version >= 3) {
                    req = req
                        .with_producer_id(ProducerId(c.id))
                        .with_producer_epoch(c.epoch);
                } else {
                    req = req.with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
                }
                let resp = conn.send_at(req, version).await.map_err(|e| {
                    kafka_core::client::Error::net(
                        e,
                        kafka_core::client::ErrorContext::new()
                            .broker(node)
                            .api("InitProducerId"),
                    )
                })?;
                let ctx = match &target {
                    Target::Coordinator(kind, key) => {
                        kafka_core::client::ErrorContext::new().coordinator(*kind, key.clone())
                    }
                    _ => kafka_core::client::ErrorContext::new(),
                };
                client.check(resp.error_code, ctx.broker(node).api("InitProducerId"))?;
                Ok(ProducerIdentity {
                    id: resp.producer_id.0,
                    epoch: resp.producer_epoch,
                })
            }
        })
        .await
}

/// Writes jobs for one broker in the order the sender made them.
async fn broker_writer(inner: Arc<Inner>, node: i32, mut rx: mpsc::UnboundedReceiver<ProduceJob>) {
    let mut conn: Option<Connection> = None;
    while let Some(job) = rx.recv().await {
        let c = match conn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => match inner
                .client
                .broker_connection(node, ConnectionClass::Produce)
                .await
            {
                Ok(c) => {
                    conn = Some(c.clone());
                    c
                }
                Err(e) => {
                    tracing::debug!(node, error = %e, "no produce connection");
                    inner.refresh_metadata_soon();
                    finish_job_err(&inner, job, e.to_string(), false);
                    continue;
                }
            },
        };
        let Some(max) = c.max_version(0) else {
            finish_job_err(&inner, job, "broker does not support Produce".into(), false);
            continue;
        };
        let meta = inner.client.metadata();
        let (req, version) = build_request(&inner, &job, &meta, max);
        let started = Instant::now();
        if inner.config.acks == Acks::None {
            match c.send_no_response_at(req, version).await {
                Ok(()) => {
                    let results = job
                        .batches
                        .into_iter()
                        .map(|b| {
                            (
                                b,
                                BatchResult::Written {
                                    base_offset: -1,
                                    log_append_time: -1,
                                },
                            )
                        })
                        .collect();
                    complete(&inner, job.node, results);
                }
                Err(e) => finish_job_err(&inner, job, e.to_string(), true),
            }
            continue;
        }
        match c.enqueue_at(req, version).await {
            Ok(pending) => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    let r = pending.response().await;
                    inner.stats.record_latency(started.elapsed());
                    finish_job(&inner, job, r.map_err(|e| (e, true)));
                });
            }
            Err(e) => finish_job(&inner, job, Err((e, false))),
        }
    }
}

fn build_request(
    inner: &Inner,
    job: &ProduceJob,
    meta: &ClusterMetadata,
    max_version: i16,
) -> (ProduceRequest, i16) {
    // Produce v13 (KIP-516) names topics by id; use it only when every topic has one.
    let mut version = max_version;
    if inner.config.transactional_id.is_some() && !inner.tv2.load(Ordering::Acquire) {
        // Produce v12+ means transaction protocol v2 (KIP-890) to the broker.
        version = version.min(11);
    }
    let by_id = version >= 13
        && job
            .batches
            .iter()
            .all(|b| meta.topic(&b.topic).is_some_and(|t| t.topic_id.is_some()));
    if version >= 13 && !by_id {
        version = 12;
    }
    let mut topics: Vec<TopicProduceData> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for b in &job.batches {
        let data = PartitionProduceData::default()
            .with_index(b.partition)
            .with_records(Some(b.bytes.clone()));
        match names.iter().position(|n| *n == &*b.topic) {
            Some(i) => topics[i].partition_data.push(data),
            None => {
                names.push(&b.topic);
                let mut t = TopicProduceData::default().with_partition_data(vec![data]);
                if by_id {
                    t.topic_id = meta
                        .topic(&b.topic)
                        .and_then(|t| t.topic_id)
                        .unwrap_or_default();
                } else {
                    t.name = TopicName(StrBytes::from_string(b.topic.to_string()));
                }
                topics.push(t);
            }
        }
    }
    let timeout_ms = inner
        .config
        .client
        .connection
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let req = ProduceRequest::default()
        .with_acks(inner.config.acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_transactional_id(
            inner
                .config
                .transactional_id
                .as_ref()
                .map(|t| TransactionalId(StrBytes::from_string(t.clone()))),
        )
        .with_topic_data(topics);
    (req, version)
}

fn finish_job_err(inner: &Inner, job: ProduceJob, error: String, sent: bool) {
    let results = job
        .batches
        .into_iter()
        .map(|b| {
            (
                b,
                BatchResult::Transport {
                    error: error.clone(),
                    sent,
                },
            )
        })
        .collect();
    complete(inner, job.node, results);
}

fn finish_job(inner: &Inner, job: ProduceJob, r: Result<ProduceResponse, (NetError, bool)>) {
    let resp = match r {
        Ok(resp) => resp,
        Err((e, sent)) => {
            // A request refused before sending (version, encoding) was not sent.
            let sent = sent && !matches!(e, NetError::UnsupportedVersion { .. });
            return finish_job_err(inner, job, e.to_string(), sent);
        }
    };
    let meta = inner.client.metadata();
    let results = job
        .batches
        .into_iter()
        .map(|b| {
            let topic_id = meta.topic(&b.topic).and_then(|t| t.topic_id);
            let found = resp.responses.iter().find(|t| {
                (!t.name.0.is_empty() && *t.name.0 == *b.topic)
                    || (t.name.0.is_empty() && Some(t.topic_id) == topic_id)
            });
            let part = found.and_then(|t| {
                t.partition_responses
                    .iter()
                    .find(|p| p.index == b.partition)
            });
            let result = match part {
                None => BatchResult::Transport {
                    error: "the produce response left this partition out".into(),
                    sent: true,
                },
                Some(p) if p.error_code == 0 => BatchResult::Written {
                    base_offset: p.base_offset,
                    log_append_time: p.log_append_time_ms,
                },
                Some(p) => BatchResult::Code {
                    code: KafkaCode::from_i16(p.error_code),
                    message: p.error_message.as_ref().map(|m| m.to_string()),
                },
            };
            (b, result)
        })
        .collect();
    complete(inner, job.node, results);
}

fn complete(inner: &Inner, node: i32, results: Vec<(Batch, BatchResult)>) {
    let f = inner.lock_acc().complete(node, results, Instant::now());
    inner.apply(f);
    inner.wake.notify_one();
}
