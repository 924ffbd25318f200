//! Producers and transactions: describe producers (partition leaders), list transactions
//! (every broker), describe transactions (transaction coordinators), abort a hanging
//! transaction (WriteTxnMarkers to the partition leader) and fence producers
//! (InitProducerId at the coordinator, which bumps the epoch).

use std::collections::{BTreeMap, BTreeSet};

use kafka_core::client::Target;
use kafka_core::KafkaCode;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, DescribeTransactionsResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TransactionalId, WriteTxnMarkersRequest,
};

use crate::admin::{by_topic, sb, tn, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result, TopicPartition};

/// A producer active on a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerState {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i32,
    /// Last sequence written.
    pub last_sequence: i32,
    /// Timestamp of its last write (ms).
    pub last_timestamp: i64,
    /// Coordinator epoch of its last transaction marker.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction, if one is open.
    pub current_txn_start_offset: Option<i64>,
}

/// Transaction listing filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListTransactionsFilter {
    /// Only these states (`Ongoing`, `PrepareCommit`...). Empty: all.
    pub states: Vec<String>,
    /// Only these producer ids. Empty: all.
    pub producer_ids: Vec<i64>,
    /// Only transactions running longer than this (ms; v1+).
    pub min_duration_ms: Option<i64>,
}

/// A listed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionListing {
    /// Transactional id.
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: i64,
    /// State.
    pub state: String,
    /// The coordinator.
    pub coordinator: i32,
}

/// A described transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionDescription {
    /// State.
    pub state: String,
    /// Timeout (ms).
    pub timeout_ms: i32,
    /// Start (ms; -1 when none is open).
    pub start_time_ms: i64,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Partitions in the transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// The coordinator.
    pub coordinator: i32,
}

/// A hanging transaction to abort on one partition (from [`ProducerState`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    /// The partition.
    pub partition: TopicPartition,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Coordinator epoch.
    pub coordinator_epoch: i32,
}

/// A fenced producer's new identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FencedProducer {
    /// Producer id.
    pub producer_id: i64,
    /// The bumped epoch.
    pub producer_epoch: i16,
}

impl Admin {
    /// The active producers of partitions (asked of each leader).
    pub async fn describe_producers(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<ItemResults<TopicPartition, Vec<ProducerState>>> {
        let parts: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        self.by_leader("describe producers", parts, |node, tps| async move {
            let sent = self
                .send(&Target::Broker(node), |_| {
                    Ok(DescribeProducersRequest::default().with_topics(
                        by_topic(&tps)
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicRequest::default()
                                    .with_name(tn(&t))
                                    .with_partition_indexes(ps)
                            })
                            .collect(),
                    ))
                })
                .await?;
            let mut out = Vec::new();
            for t in &sent.response.topics {
                for p in &t.partitions {
                    out.push((
                        TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        match ItemError::from_code(p.error_code, p.error_message.as_deref()) {
                            Some(e) => Err(e),
                            None => Ok(p
                                .active_producers
                                .iter()
                                .map(|s| ProducerState {
                                    producer_id: s.producer_id.0,
                                    producer_epoch: s.producer_epoch,
                                    last_sequence: s.last_sequence,
                                    last_timestamp: s.last_timestamp,
                                    coordinator_epoch: s.coordinator_epoch,
                                    current_txn_start_offset: (s.current_txn_start_offset >= 0)
                                        .then_some(s.current_txn_start_offset),
                                })
                                .collect()),
                        },
                    ));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Lists transactions on every broker (each lists those it coordinates), merged.
    pub async fn list_transactions(
        &self,
        filter: &ListTransactionsFilter,
    ) -> Result<Vec<TransactionListing>> {
        let mut out = Vec::new();
        for b in self.broker_ids().await? {
            let sent = self
                .call(
                    "list transactions",
                    Target::Broker(b),
                    |v| {
                        let mut r = ListTransactionsRequest::default()
                            .with_state_filters(filter.states.iter().map(|s| sb(s)).collect())
                            .with_producer_id_filters(
                                filter.producer_ids.iter().map(|p| ProducerId(*p)).collect(),
                            );
                        if let Some(d) = filter.min_duration_ms {
                            if v < 1 {
                                return Err(AdminError::Unsupported {
                                    what:
                                        "filtering transactions by duration (ListTransactions v1)"
                                            .into(),
                                    broker: b,
                                });
                            }
                            r.duration_filter = d;
                        }
                        Ok(r)
                    },
                    |r: &ListTransactionsResponse| (r.error_code, None),
                )
                .await?;
            for t in &sent.response.transaction_states {
                out.push(TransactionListing {
                    transactional_id: t.transactional_id.0.to_string(),
                    producer_id: t.producer_id.0,
                    state: t.transaction_state.to_string(),
                    coordinator: b,
                });
            }
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describes transactions, each at its coordinator.
    pub async fn describe_transactions(
        &self,
        transactional_ids: &[&str],
    ) -> Result<ItemResults<String, TransactionDescription>> {
        let mut out = ItemResults::new("describe transactions");
        for &id in transactional_ids {
            let sent = self
                .call(
                    "describe transactions",
                    Target::transaction(id),
                    |_| {
                        Ok(DescribeTransactionsRequest::default()
                            .with_transactional_ids(vec![TransactionalId(sb(id))]))
                    },
                    |r: &DescribeTransactionsResponse| {
                        r.transaction_states
                            .first()
                            .filter(|s| KafkaCode::from_i16(s.error_code).is_retriable())
                            .map_or((0, None), |s| (s.error_code, None))
                    },
                )
                .await?;
            for s in &sent.response.transaction_states {
                out.insert(
                    s.transactional_id.0.to_string(),
                    match ItemError::from_code(s.error_code, None) {
                        Some(e) => Err(e),
                        None => Ok(TransactionDescription {
                            state: s.transaction_state.to_string(),
                            timeout_ms: s.transaction_timeout_ms,
                            start_time_ms: s.transaction_start_time_ms,
                            producer_id: s.producer_id.0,
                            producer_epoch: s.producer_epoch,
                            partitions: s
                                .topics
                                .iter()
                                .flat_map(|t| {
                                    t.partitions.iter().map(move |p| {
                                        TopicPartition::new(t.topic.0.to_string(), *p)
                                    })
                                })
                                .collect(),
                            coordinator: sent.node,
                        }),
                    },
                );
            }
            out.insert_missing(id.to_owned());
        }
        Ok(out)
    }

    /// Aborts a hanging transaction on one partition by writing an abort marker there
    /// (needs CLUSTER_ACTION on the cluster; the producer must not come back with the
    /// same epoch).
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec) -> Result<()> {
        let tp = &spec.partition;
        let sent = self
            .call(
                "abort transaction",
                Target::leader_of(tp.topic.clone(), tp.partition),
                |_| {
                    Ok(WriteTxnMarkersRequest::default().with_markers(vec![
                        WritableTxnMarker::default()
                            .with_producer_id(ProducerId(spec.producer_id))
                            .with_producer_epoch(spec.producer_epoch)
                            .with_transaction_result(false)
                            .with_coordinator_epoch(spec.coordinator_epoch)
                            .with_topics(vec![WritableTxnMarkerTopic::default()
                                .with_name(tn(&tp.topic))
                                .with_partition_indexes(vec![tp.partition])]),
                    ]))
                },
                |r: &kafka_protocol::messages::WriteTxnMarkersResponse| {
                    r.markers
                        .iter()
                        .flat_map(|m| &m.topics)
                        .flat_map(|t| &t.partitions)
                        .map(|p| p.error_code)
                        .find(|c| KafkaCode::from_i16(*c).needs_metadata_refresh())
                        .map_or((0, None), |c| (c, None))
                },
            )
            .await?;
        for m in &sent.response.markers {
            for t in &m.topics {
                for p in &t.partitions {
                    if let Some(e) = ItemError::from_code(p.error_code, None) {
                        return Err(AdminError::Partial {
                            operation: "abort transaction",
                            total: 1,
                            failures: vec![(tp.to_string(), e)],
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Fences the producers of `transactional_ids`: their epoch is bumped, so the current
    /// producer instances fail with a fencing error and their open transactions abort.
    pub async fn fence_producers(
        &self,
        transactional_ids: &[&str],
    ) -> Result<ItemResults<String, FencedProducer>> {
        let mut out = ItemResults::new("fence producers");
        for &id in transactional_ids {
            let r = self
                .call(
                    "fence producers",
                    Target::transaction(id),
                    |_| {
                        Ok(InitProducerIdRequest::default()
                            .with_transactional_id(Some(TransactionalId(sb(id))))
                            .with_transaction_timeout_ms(60_000))
                    },
                    |r: &InitProducerIdResponse| {
                        let c = KafkaCode::from_i16(r.error_code);
                        if c.is_retriable() || c == KafkaCode::ConcurrentTransactions {
                            (r.error_code, None)
                        } else {
                            (0, None)
                        }
                    },
                )
                .await;
            let v = match r {
                Ok(sent) => match ItemError::from_code(sent.response.error_code, None) {
                    Some(e) => Err(e),
                    None => Ok(FencedProducer {
                        producer_id: sent.response.producer_id.0,
                        producer_epoch: sent.response.producer_epoch,
                    }),
                },
                Err(e) => Err(ItemError::new(
                    e.kafka_code().unwrap_or(KafkaCode::UnknownServerError),
                    Some(e.to_string()),
                )),
            };
            out.insert(id.to_owned(), v);
        }
        Ok(out)
    }
}

/// Abort specs for every open transaction on `producers` older than `min_age_ms` at `now_ms`
/// (a helper for finding hanging transactions).
pub fn hanging_transactions(
    producers: &BTreeMap<TopicPartition, Vec<ProducerState>>,
    now_ms: i64,
    min_age_ms: i64,
) -> Vec<AbortTransactionSpec> {
    let mut out = Vec::new();
    for (tp, ps) in producers {
        for p in ps {
            if p.current_txn_start_offset.is_some() && now_ms - p.last_timestamp >= min_age_ms {
                out.push(AbortTransactionSpec {
                    partition: tp.clone(),
                    producer_id: p.producer_id,
                    producer_epoch: i16::try_from(p.producer_epoch).unwrap_or(i16::MAX),
                    coordinator_epoch: p.coordinator_epoch,
                });
            }
        }
    }
    out
}
