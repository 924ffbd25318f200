//! [`Admin`]: the handle, and how every call is routed, versioned and retried.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use kafka_core::client::{Backoff, Client, ConnectionClass, Error, ErrorContext, Target};
use kafka_core::codec::message::api_name;
use kafka_core::protocol::protocol::{Request, StrBytes};
use kafka_core::KafkaCode;
use kafka_protocol::messages::TopicName;
use tokio::time::Instant;

use crate::config::AdminConfig;
use crate::error::{AdminError, ItemError, ItemResults, Result, TopicPartition};

/// The admin client: typed calls for every admin API of Kafka, plus operations helpers.
///
/// Cheap to clone (a handle), `Send + Sync`. Every call is routed where Kafka wants it (the
/// controller, a group or transaction coordinator, a partition leader, a given broker, or
/// every broker, with the answers merged), sent at the highest version both sides support,
/// and retried within `default.api.timeout.ms` while the failure is retriable (a moved
/// coordinator or leader, a broker restarting). Batched calls return [`ItemResults`]: one
/// outcome per item, so a partial failure names the items that failed and why.
#[derive(Debug, Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: AdminConfig,
}

/// A response and where it came from.
#[derive(Debug)]
pub(crate) struct Sent<T> {
    pub node: i32,
    pub version: i16,
    pub response: T,
}

impl Admin {
    /// Connects (bootstraps) and returns the client.
    pub async fn connect(config: AdminConfig) -> Result<Self> {
        let client = Client::connect(config.client.clone()).await?;
        Ok(Self::with_client(client, config))
    }

    /// An admin client over an existing cluster client (sharing its connections and caches).
    pub fn with_client(client: Client, config: AdminConfig) -> Self {
        Admin {
            inner: Arc::new(Inner { client, config }),
        }
    }

    /// The cluster client underneath (for the raw request escape hatch, `send_to`).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The settings.
    pub fn config(&self) -> &AdminConfig {
        &self.inner.config
    }

    /// `admin.operation.timeout.ms` as the wire's `timeout_ms`.
    pub(crate) fn op_timeout_ms(&self) -> i32 {
        i32::try_from(self.inner.config.operation_timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// Sends one request to `target` at the highest version both sides support; `build`
    /// makes the request for that version (fields a version lacks must stay at default).
    pub(crate) async fn send<R, F>(&self, target: &Target, build: F) -> Result<Sent<R::Response>>
    where
        R: Request + 'static,
        R::Response: 'static,
        F: FnOnce(i16) -> Result<R>,
    {
        let client = &self.inner.client;
        let (node, conn) = client
            .connection(target, ConnectionClass::for_api(R::KEY))
            .await?;
        // Capped by the request type's own range: kafka-protocol 0.18 may know a newer
        // response version than request version (OffsetCommit, OffsetFetch).
        let version = conn
            .max_version(R::KEY)
            .map(|v| v.min(R::VERSIONS.max))
            .filter(|v| *v >= R::VERSIONS.min)
            .ok_or_else(|| AdminError::Unsupported {
                what: format!("the {} API", api_name(R::KEY)),
                broker: node,
            })?;
        let req = build(version)?;
        let response = conn.send_at(req, version).await.map_err(|e| {
            let err = Error::net(e, ErrorContext::new().broker(node).api(api_name(R::KEY)));
            client.report(&err);
            AdminError::Client(err)
        })?;
        Ok(Sent {
            node,
            version,
            response,
        })
    }

    /// Runs `op` until it succeeds, fails for good, or `default.api.timeout.ms` passes.
    /// Retriable cluster errors are reported (healing metadata and coordinator caches) and
    /// retried after a backoff.
    pub(crate) async fn retry<T, F, Fut>(&self, what: &'static str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let client = &self.inner.client;
        let start = Instant::now();
        let deadline = start + client.config().default_api_timeout;
        let mut backoff = Backoff::new(client.config().retry_backoff);
        loop {
            let err = match tokio::time::timeout_at(deadline, op()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(AdminError::Client(Error::Timeout {
                        what,
                        elapsed: start.elapsed(),
                        last: None,
                    }))
                }
            };
            let AdminError::Client(e) = &err else {
                return Err(err);
            };
            client.report(e);
            if !e.is_retriable() {
                return Err(err);
            }
            let delay = backoff.next_delay();
            if Instant::now() + delay >= deadline {
                return Err(err);
            }
            tracing::debug!(what, error = %e, ?delay, "admin call retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends with [`retry`](Self::retry); `check` turns a response's top-level error into
    /// an error (retriable ones are retried).
    pub(crate) async fn call<R, F, C>(
        &self,
        what: &'static str,
        target: Target,
        build: F,
        check: C,
    ) -> Result<Sent<R::Response>>
    where
        R: Request + 'static,
        R::Response: 'static,
        F: Fn(i16) -> Result<R>,
        C: Fn(&R::Response) -> (i16, Option<String>),
    {
        self.retry(what, || async {
            let sent = self.send(&target, &build).await?;
            let (code, message) = check(&sent.response);
            top_level(code, message, &target, sent.node, R::KEY)?;
            Ok(sent)
        })
        .await
    }

    /// The node ids of every broker, from a fresh metadata response.
    pub(crate) async fn broker_ids(&self) -> Result<Vec<i32>> {
        let meta = self
            .retry("metadata", || async {
                Ok(self.inner.client.refresh_metadata::<&str>(&[]).await?)
            })
            .await?;
        Ok(meta.brokers().map(|b| b.node_id).collect())
    }

    /// Sends requests per partition leader and merges the answers. `f` gets a leader and
    /// its partitions and returns one outcome per partition. Partitions whose outcome is
    /// retriable (a leader moved) are sent again after a metadata refresh, within
    /// `default.api.timeout.ms`.
    pub(crate) async fn by_leader<V, F, Fut>(
        &self,
        what: &'static str,
        partitions: BTreeSet<TopicPartition>,
        f: F,
    ) -> Result<ItemResults<TopicPartition, V>>
    where
        F: Fn(i32, Vec<TopicPartition>) -> Fut,
        Fut: Future<Output = Result<Vec<(TopicPartition, std::result::Result<V, ItemError>)>>>,
    {
        let client = &self.inner.client;
        let mut out = ItemResults::new(what);
        let mut pending = partitions;
        let start = Instant::now();
        let deadline = start + client.config().default_api_timeout;
        let mut backoff = Backoff::new(client.config().retry_backoff);
        loop {
            let topics: BTreeSet<&str> = pending.iter().map(|tp| tp.topic.as_str()).collect();
            let topics: Vec<&str> = topics.into_iter().collect();
            let meta = self
                .retry("metadata", || async {
                    Ok(client.refresh_metadata(&topics).await?)
                })
                .await?;
            let last_round = Instant::now() >= deadline;
            let mut by_node: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            let mut retry_later = BTreeSet::new();
            for tp in std::mem::take(&mut pending) {
                let topic = meta.topic(&tp.topic);
                let part = topic.and_then(|t| t.partition(tp.partition));
                match (topic, part) {
                    (None, _) => {
                        out.insert(
                            tp,
                            Err(ItemError::new(
                                KafkaCode::UnknownTopicOrPartition,
                                Some("no such topic".into()),
                            )),
                        );
                    }
                    (Some(t), None) if !t.error.is_ok() && !t.error.is_retriable() => {
                        out.insert(tp, Err(ItemError::new(t.error, None)));
                    }
                    (Some(t), None) if !t.partitions.is_empty() => {
                        out.insert(
                            tp,
                            Err(ItemError::new(
                                KafkaCode::UnknownTopicOrPartition,
                                Some(format!("the topic has {} partition(s)", t.partitions.len())),
                            )),
                        );
                    }
                    (Some(_), p) => match p.and_then(|p| p.leader) {
                        Some(leader) => by_node.entry(leader).or_default().push(tp),
                        None if last_round => {
                            out.insert(
                                tp,
                                Err(ItemError::new(KafkaCode::LeaderNotAvailable, None)),
                            );
                        }
                        None => {
                            retry_later.insert(tp);
                        }
                    },
                }
            }
            for (node, tps) in by_node {
                match f(node, tps.clone()).await {
                    Ok(results) => {
                        let mut seen = BTreeSet::new();
                        for (tp, r) in results {
                            seen.insert(tp.clone());
                            match r {
                                Err(e) if e.code.is_retriable() && !last_round => {
                                    if e.code.needs_metadata_refresh() {
                                        client.report(&Error::kafka(e.code, ErrorContext::new()));
                                    }
                                    retry_later.insert(tp);
                                }
                                r => out.insert(tp, r),
                            }
                        }
                        for tp in tps {
                            if !seen.contains(&tp) {
                                out.insert_missing(tp);
                            }
                        }
                    }
                    Err(AdminError::Client(e)) if e.is_retriable() && !last_round => {
                        client.report(&e);
                        retry_later.extend(tps);
                    }
                    Err(e) => {
                        let item = ItemError::new(
                            e.kafka_code().unwrap_or(KafkaCode::UnknownServerError),
                            Some(e.to_string()),
                        );
                        for tp in tps {
                            out.insert(tp, Err(item.clone()));
                        }
                    }
                }
            }
            if retry_later.is_empty() {
                return Ok(out);
            }
            pending = retry_later;
            let delay = backoff.next_delay();
            tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// A response's top-level error code as an error carrying where it came from.
pub(crate) fn top_level(
    code: i16,
    message: Option<String>,
    target: &Target,
    node: i32,
    api: i16,
) -> Result<()> {
    match KafkaCode::check(code) {
        Ok(()) => Ok(()),
        Err(code) => {
            let mut context = ErrorContext::new().broker(node).api(api_name(api));
            if let Target::Coordinator(kind, key) = target {
                context = context.coordinator(*kind, key.clone());
            }
            Err(AdminError::Client(Error::Kafka {
                context: Box::new(context),
                code,
                message: message.filter(|m| !m.is_empty()),
            }))
        }
    }
}

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(crate) fn tn(s: &str) -> TopicName {
    TopicName(sb(s))
}

pub(crate) fn opt_msg(m: &Option<StrBytes>) -> Option<String> {
    m.as_ref().map(|m| m.to_string()).filter(|m| !m.is_empty())
}

/// Groups partitions by topic, partitions sorted.
pub(crate) fn by_topic<'a>(
    tps: impl IntoIterator<Item = &'a TopicPartition>,
) -> BTreeMap<String, Vec<i32>> {
    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        m.entry(tp.topic.clone()).or_default().push(tp.partition);
    }
    for v in m.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    m
}
