//! [`Client`]: the cluster view shared by producers, consumers and admin clients.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, MetadataResponse};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::time::Instant;
use tracing::Instrument;

use crate::client::backoff::{Backoff, XorShift64};
use crate::client::config::ClientConfig;
use crate::client::error::{ClientResult, Error, ErrorContext};
use crate::client::metadata::{ClusterMetadata, MetadataCache, TopicSelection};
use crate::client::pool::{BackoffPolicy, NodeKey, Pool};
use crate::client::route::{
    route, ConnectionClass, CoordinatorCache, CoordinatorKind, Route, Target,
};
use crate::codec::message::api_name;
use crate::kafka_error::KafkaCode;
use crate::net::Connection;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the last completed metadata refresh covered, so that callers who waited for it can
/// use its result instead of asking again.
#[derive(Debug, Default)]
struct RefreshState {
    generation: u64,
    last: Option<TopicSelection>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    pool: Pool,
    metadata: Mutex<MetadataCache>,
    /// Serialises metadata requests: at most one is in flight; concurrent callers coalesce.
    refresh: tokio::sync::Mutex<RefreshState>,
    /// The refresh generation (mirrors `RefreshState::generation`, readable without waiting).
    generation: Mutex<u64>,
    last_auto_refresh: Mutex<Option<Instant>>,
    coordinators: Mutex<CoordinatorCache>,
    /// Addresses FindCoordinator gave, for coordinators metadata does not list (yet).
    coordinator_addrs: Mutex<HashMap<i32, (String, u16)>>,
    rng: Mutex<XorShift64>,
    closed: AtomicBool,
}

/// A Kafka cluster client: bootstrap, metadata cache, routing, connection pool, coordinator
/// lookup and retries. Cheap to clone (a handle); `Send + Sync`.
///
/// ```no_run
/// # async fn demo() -> Result<(), kafka_core::client::Error> {
/// use kafka_core::client::{Client, ClientConfig, Target};
/// use kafka_protocol::messages::DescribeClusterRequest;
///
/// let client = Client::connect(ClientConfig::new(["localhost:9092"])?).await?;
/// println!("cluster {:?}", client.metadata().cluster_id());
/// let described = client.send_to(Target::AnyBroker, DescribeClusterRequest::default()).await?;
/// # let _ = described; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// A client; no I/O happens until the first request.
    pub fn new(config: ClientConfig) -> ClientResult<Self> {
        config.validate()?;
        let pool = Pool::new(Arc::clone(&config.connection), config.reconnect_backoff);
        let metadata = MetadataCache::new(config.metadata_max_age);
        Ok(Client {
            inner: Arc::new(Inner {
                pool,
                metadata: Mutex::new(metadata),
                refresh: tokio::sync::Mutex::new(RefreshState::default()),
                generation: Mutex::new(0),
                last_auto_refresh: Mutex::new(None),
                coordinators: Mutex::new(CoordinatorCache::default()),
                coordinator_addrs: Mutex::new(HashMap::new()),
                rng: Mutex::new(XorShift64::from_entropy()),
                closed: AtomicBool::new(false),
                config,
            }),
        })
    }

    /// A client that has bootstrapped: it fetched the brokers and controller from one of the
    /// bootstrap servers, retrying within `default.api.timeout.ms`.
    pub async fn connect(config: ClientConfig) -> ClientResult<Self> {
        let client = Client::new(config)?;
        client
            .retry("bootstrap", || {
                client.refresh_metadata_for(TopicSelection::Named(BTreeSet::new()))
            })
            .await?;
        Ok(client)
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The current metadata snapshot (possibly empty before bootstrap).
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        lock(&self.inner.metadata).snapshot()
    }

    /// Adds `topics` to those tracked, then refreshes metadata for every tracked topic.
    /// Concurrent refreshes coalesce: at most one Metadata request is in flight, and a caller
    /// that waited for another's refresh covering its topics gets that result.
    pub async fn refresh_metadata<S: AsRef<str>>(
        &self,
        topics: &[S],
    ) -> ClientResult<Arc<ClusterMetadata>> {
        let selection = {
            let mut cache = lock(&self.inner.metadata);
            cache.want_topics(topics.iter().map(|t| t.as_ref().to_owned()));
            cache.selection()
        };
        self.refresh_metadata_for(selection).await
    }

    /// Refreshes metadata for every topic of the cluster (tracked topics are unchanged).
    pub async fn refresh_all_metadata(&self) -> ClientResult<Arc<ClusterMetadata>> {
        self.refresh_metadata_for(TopicSelection::All).await
    }

    /// One metadata refresh for `selection` (no retry).
    pub async fn refresh_metadata_for(
        &self,
        selection: TopicSelection,
    ) -> ClientResult<Arc<ClusterMetadata>> {
        self.check_open()?;
        let seen = *lock(&self.inner.generation);
        let mut state = self.inner.refresh.lock().await;
        if state.generation != seen && state.last.as_ref().is_some_and(|l| covers(l, &selection)) {
            tracing::trace!("metadata refresh coalesced with a concurrent one");
            return Ok(self.metadata());
        }
        let response = self.fetch_metadata(&selection).await?;
        let snapshot =
            lock(&self.inner.metadata).update(&response, &selection, Instant::now().into_std());
        state.generation += 1;
        state.last = Some(selection);
        *lock(&self.inner.generation) = state.generation;
        drop(state);
        self.prune_departed_brokers(&snapshot);
        tracing::debug!(
            brokers = snapshot.brokers().count(),
            topics = snapshot.topics().count(),
            controller = ?snapshot.controller_id(),
            "metadata refreshed"
        );
        Ok(snapshot)
    }

    /// Sends one Metadata request: to a known broker (random order), then to the bootstrap
    /// servers, the first that answers wins.
    async fn fetch_metadata(&self, selection: &TopicSelection) -> ClientResult<MetadataResponse> {
        let deadline = Instant::now() + self.inner.config.default_api_timeout;
        let mut candidates: Vec<(NodeKey, String, u16)> = {
            let snap = self.metadata();
            snap.brokers()
                .map(|b| (NodeKey::Broker(b.node_id), b.host.clone(), b.port))
                .collect()
        };
        {
            let mut rng = lock(&self.inner.rng);
            // Fisher-Yates: spread metadata load over the brokers.
            for i in (1..candidates.len()).rev() {
                let j = rng.below(i + 1);
                candidates.swap(i, j);
            }
        }
        candidates.extend(
            self.inner
                .config
                .bootstrap_servers
                .iter()
                .enumerate()
                .map(|(i, s)| (NodeKey::Bootstrap(i), s.host.clone(), s.port)),
        );
        let mut tried = Vec::new();
        let mut last = None;
        let mut last_kafka = None;
        // First pass skips endpoints in reconnect backoff; if every one was, wait for them.
        for policy in [BackoffPolicy::FailFast, BackoffPolicy::Wait] {
            for (key, host, port) in &candidates {
                let conn = match self
                    .inner
                    .pool
                    .get(*key, ConnectionClass::Admin, host, *port, deadline, policy)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tried.push(format!("{host}:{port}"));
                        last = Some(e);
                        continue;
                    }
                };
                match conn.send(selection.request()).await {
                    Ok(resp) => {
                        let code = KafkaCode::from_i16(resp.error_code);
                        if code.needs_rebootstrap() {
                            // KIP-1102: forget what brokers told us; the bootstrap servers
                            // (later in the list) are asked next.
                            lock(&self.inner.metadata).reset();
                            last_kafka = Some(code);
                            continue;
                        }
                        return Ok(resp);
                    }
                    Err(e) => {
                        tried.push(format!("{host}:{port}"));
                        last = Some(Arc::new(e));
                    }
                }
            }
            if last.is_none() && last_kafka.is_none() {
                break;
            }
        }
        if let Some(code) = last_kafka {
            return Err(Error::kafka(code, ErrorContext::new().api("Metadata")));
        }
        tried.dedup();
        Err(Error::Bootstrap { tried, last })
    }

    fn prune_departed_brokers(&self, snapshot: &ClusterMetadata) {
        if snapshot.brokers().next().is_none() {
            return;
        }
        let coordinator_nodes: Vec<i32> = lock(&self.inner.coordinator_addrs)
            .keys()
            .copied()
            .collect();
        for key in self.inner.pool.keys() {
            if let NodeKey::Broker(id) = key {
                if snapshot.broker(id).is_none() && !coordinator_nodes.contains(&id) {
                    tracing::debug!(
                        node = id,
                        "broker left the cluster; closing its connections"
                    );
                    self.inner.pool.remove(key);
                }
            }
        }
    }

    /// Refreshes metadata when it is due (stale, too old, a tracked topic missing), at most
    /// once per `retry.backoff.ms`; a failure keeps the old snapshot.
    async fn maybe_refresh(&self) {
        let now = Instant::now();
        if !lock(&self.inner.metadata).needs_refresh(now.into_std()) {
            return;
        }
        {
            let mut last = lock(&self.inner.last_auto_refresh);
            if last.is_some_and(|t| now < t + self.inner.config.retry_backoff.initial) {
                return;
            }
            *last = Some(now);
        }
        let selection = lock(&self.inner.metadata).selection();
        if let Err(e) = self.refresh_metadata_for(selection).await {
            tracing::debug!(error = %e, "background metadata refresh failed");
        }
    }

    fn check_open(&self) -> ClientResult<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn node_address(&self, node: i32) -> Option<(String, u16)> {
        if let Some(b) = self.metadata().broker(node) {
            return Some((b.host.clone(), b.port));
        }
        lock(&self.inner.coordinator_addrs).get(&node).cloned()
    }

    /// The connection of `class` to broker `node`.
    pub async fn broker_connection(
        &self,
        node: i32,
        class: ConnectionClass,
    ) -> ClientResult<Connection> {
        self.check_open()?;
        let deadline = Instant::now() + self.inner.config.default_api_timeout;
        let (host, port) = match self.node_address(node) {
            Some(a) => a,
            None => {
                self.refresh_known_selection().await?;
                self.node_address(node).ok_or_else(|| Error::Unroutable {
                    context: Box::new(ErrorContext::new().broker(node)),
                    reason: "broker not in metadata",
                    code: Some(KafkaCode::BrokerNotAvailable),
                })?
            }
        };
        self.inner
            .pool
            .get(
                NodeKey::Broker(node),
                class,
                &host,
                port,
                deadline,
                BackoffPolicy::Wait,
            )
            .await
            .map_err(|source| Error::Net {
                context: Box::new(ErrorContext::new().broker(node)),
                source,
            })
    }

    async fn refresh_known_selection(&self) -> ClientResult<Arc<ClusterMetadata>> {
        let selection = lock(&self.inner.metadata).selection();
        self.refresh_metadata_for(selection).await
    }

    /// One attempt to route `target` and connect: may refresh metadata or look up a
    /// coordinator once. Errors are retriable where a later attempt can do better.
    async fn connection_once(
        &self,
        target: &Target,
        class: ConnectionClass,
    ) -> ClientResult<(i32, Connection)> {
        self.check_open()?;
        self.maybe_refresh().await;
        let mut refreshed = false;
        let mut looked_up = false;
        loop {
            let routed = {
                let snap = self.metadata();
                let coords = lock(&self.inner.coordinators);
                let mut rng = lock(&self.inner.rng);
                route(&snap, &coords, target, &mut rng)
            }?;
            match routed {
                Route::Node(node) => {
                    let conn = self.broker_connection(node, class).await.map_err(|e| {
                        e.with_context(|c| {
                            let t = target.context();
                            c.topic = c.topic.take().or(t.topic);
                            c.partition = c.partition.or(t.partition);
                            c.coordinator = c.coordinator.take().or(t.coordinator);
                        })
                    })?;
                    return Ok((node, conn));
                }
                Route::NeedMetadata if !refreshed => {
                    refreshed = true;
                    match target {
                        Target::LeaderOf(topic, _) => {
                            self.refresh_metadata(&[topic.as_str()]).await?;
                        }
                        _ => {
                            self.refresh_known_selection().await?;
                        }
                    }
                }
                Route::NeedMetadata => {
                    let code = match target {
                        Target::LeaderOf(..) => Some(KafkaCode::UnknownTopicOrPartition),
                        _ => None,
                    };
                    return Err(Error::Unroutable {
                        context: Box::new(target.context()),
                        reason: "not in metadata",
                        code,
                    });
                }
                Route::NeedCoordinator(kind, key) if !looked_up => {
                    looked_up = true;
                    self.find_coordinator(kind, &key).await?;
                }
                Route::NeedCoordinator(kind, key) => {
                    return Err(Error::Unroutable {
                        context: Box::new(ErrorContext::new().coordinator(kind, key)),
                        reason: "coordinator lookup gave no answer",
                        code: Some(KafkaCode::CoordinatorNotAvailable),
                    });
                }
            }
        }
    }

    /// A connection to a random known broker (no coordinator routing: FindCoordinator itself
    /// goes through here).
    async fn any_connection(&self, class: ConnectionClass) -> ClientResult<(i32, Connection)> {
        self.check_open()?;
        self.maybe_refresh().await;
        let pick = |this: &Self| {
            let snap = this.metadata();
            let coords = CoordinatorCache::default();
            let mut rng = lock(&this.inner.rng);
            route(&snap, &coords, &Target::AnyBroker, &mut rng)
        };
        let mut routed = pick(self)?;
        if routed == Route::NeedMetadata {
            self.refresh_known_selection().await?;
            routed = pick(self)?;
        }
        match routed {
            Route::Node(node) => Ok((node, self.broker_connection(node, class).await?)),
            _ => Err(Error::Unroutable {
                context: Box::new(ErrorContext::new()),
                reason: "metadata lists no broker",
                code: None,
            }),
        }
    }

    /// Routes `target` and returns its node id and the connection of `class` to it, retrying
    /// (metadata refreshes, coordinator lookups, reconnects) within `default.api.timeout.ms`.
    pub async fn connection(
        &self,
        target: &Target,
        class: ConnectionClass,
    ) -> ClientResult<(i32, Connection)> {
        self.retry("route", || self.connection_once(target, class))
            .await
    }

    /// Sends any `kafka-protocol` request to `target` and returns the typed response: the raw
    /// escape hatch (as franz-go's `kmsg`). The request goes at the highest version both
    /// sides support, on the connection class its API belongs to.
    ///
    /// Routing and connecting are retried within `default.api.timeout.ms` (nothing was sent
    /// yet, so that is always safe). The request itself is sent once: error codes inside the
    /// response are the caller's to read (and to [`report`](Self::report)); a connection
    /// error after sending is returned, as the broker may have acted on the request.
    pub async fn send_to<R>(&self, target: Target, req: R) -> ClientResult<R::Response>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        let api = api_name(R::KEY);
        let span = tracing::debug_span!("kafka_client_request", api, target = ?target, broker = tracing::field::Empty);
        async move {
            let class = ConnectionClass::for_api(R::KEY);
            let (node, conn) = self.connection(&target, class).await?;
            tracing::Span::current().record("broker", node);
            conn.send(req).await.map_err(|e| {
                let context = target.context().broker(node).api(api);
                let err = Error::net(e, context);
                self.report(&err);
                err
            })
        }
        .instrument(span)
        .await
    }

    /// Tells the client about an error a caller saw (a Kafka code in a response, say), so
    /// that the caches heal: stale-metadata codes mark metadata for refresh, coordinator
    /// codes drop the cached coordinator named in the error's context, and
    /// `REBOOTSTRAP_REQUIRED` forgets everything learned from brokers.
    pub fn report(&self, error: &Error) {
        if error.needs_metadata_refresh() {
            lock(&self.inner.metadata).mark_stale();
        }
        if error.kafka_code().is_some_and(KafkaCode::needs_rebootstrap) {
            lock(&self.inner.metadata).reset();
        }
        if error.needs_coordinator_refresh() {
            if let Some((kind, key)) = error.context().and_then(|c| c.coordinator.clone()) {
                if lock(&self.inner.coordinators).invalidate(kind, &key) {
                    tracing::debug!(?kind, key, "coordinator invalidated");
                }
            }
        }
    }

    /// Turns a response's error code into a result, reporting a non-zero code (see
    /// [`report`](Self::report)).
    pub fn check(&self, code: i16, context: ErrorContext) -> ClientResult<()> {
        match KafkaCode::check(code) {
            Ok(()) => Ok(()),
            Err(code) => {
                let err = Error::kafka(code, context);
                self.report(&err);
                Err(err)
            }
        }
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or
    /// `default.api.timeout.ms` passes; between attempts it reports the error (healing the
    /// caches) and waits with exponential backoff (`retry.backoff.ms`, KIP-580).
    pub async fn retry<T, F, Fut>(&self, what: &'static str, op: F) -> ClientResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let deadline = Instant::now() + self.inner.config.default_api_timeout;
        self.retry_until(what, deadline, op).await
    }

    /// [`retry`](Self::retry) with an explicit deadline.
    pub async fn retry_until<T, F, Fut>(
        &self,
        what: &'static str,
        deadline: Instant,
        mut op: F,
    ) -> ClientResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let start = Instant::now();
        let mut backoff = Backoff::new(self.inner.config.retry_backoff);
        let mut last: Option<Error> = None;
        loop {
            let outcome = tokio::time::timeout_at(deadline, op()).await;
            let err = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(Error::Timeout {
                        what,
                        elapsed: start.elapsed(),
                        last: last.map(Box::new),
                    })
                }
            };
            self.report(&err);
            if !err.is_retriable() {
                return Err(err);
            }
            let delay = backoff.next_delay();
            if Instant::now() + delay >= deadline {
                return Err(Error::Timeout {
                    what,
                    elapsed: start.elapsed(),
                    last: Some(Box::new(err)),
                });
            }
            tracing::debug!(what, attempt = backoff.attempts(), ?delay, error = %err, "retrying");
            last = Some(err);
            tokio::time::sleep(delay).await;
        }
    }

    /// The node id of the coordinator of `key` (cached; looked up once if not).
    pub async fn coordinator(&self, kind: CoordinatorKind, key: &str) -> ClientResult<i32> {
        if let Some(node) = lock(&self.inner.coordinators).get(kind, key) {
            return Ok(node);
        }
        self.retry("find coordinator", || self.find_coordinator(kind, key))
            .await
    }

    /// Drops the cached coordinator of `key`.
    pub fn invalidate_coordinator(&self, kind: CoordinatorKind, key: &str) {
        lock(&self.inner.coordinators).invalidate(kind, key);
    }

    async fn find_coordinator(&self, kind: CoordinatorKind, key: &str) -> ClientResult<i32> {
        let mut found = self.find_coordinators(kind, &[key]).await?;
        found.remove(key).unwrap_or_else(|| {
            Err(Error::kafka(
                KafkaCode::CoordinatorNotAvailable,
                ErrorContext::new().coordinator(kind, key),
            ))
        })
    }

    /// Looks up the coordinators of several keys (one attempt): batched in one
    /// FindCoordinator request at v4+ (KIP-699), one request per key below. Found
    /// coordinators are cached; per-key errors are returned in the map.
    pub async fn find_coordinators(
        &self,
        kind: CoordinatorKind,
        keys: &[&str],
    ) -> ClientResult<HashMap<String, ClientResult<i32>>> {
        let (node, conn) = self.any_connection(ConnectionClass::Admin).await?;
        let api = api_name(ApiKey::FindCoordinator as i16);
        let version = conn
            .max_version(ApiKey::FindCoordinator as i16)
            .unwrap_or(0);
        let span = tracing::debug_span!(
            "kafka_find_coordinator",
            ?kind,
            keys = keys.len(),
            broker = node
        );
        async move {
            let net_err = |e| Error::net(e, ErrorContext::new().broker(node).api(api));
            let mut entries: Vec<(String, i16, Option<String>, i32, String, i32)> = Vec::new();
            if version >= 4 {
                let req = FindCoordinatorRequest::default()
                    .with_key_type(kind.key_type())
                    .with_coordinator_keys(
                        keys.iter()
                            .map(|k| StrBytes::from_string((*k).to_owned()))
                            .collect(),
                    );
                let resp: FindCoordinatorResponse =
                    conn.send_at(req, version).await.map_err(net_err)?;
                for c in resp.coordinators {
                    entries.push((
                        c.key.to_string(),
                        c.error_code,
                        c.error_message.map(|m| m.to_string()),
                        c.node_id.0,
                        c.host.to_string(),
                        c.port,
                    ));
                }
            } else {
                for key in keys {
                    let mut req = FindCoordinatorRequest::default()
                        .with_key(StrBytes::from_string((*key).to_owned()));
                    if version >= 1 {
                        req = req.with_key_type(kind.key_type());
                    }
                    let resp: FindCoordinatorResponse =
                        conn.send_at(req, version).await.map_err(net_err)?;
                    entries.push((
                        (*key).to_owned(),
                        resp.error_code,
                        resp.error_message.map(|m| m.to_string()),
                        resp.node_id.0,
                        resp.host.to_string(),
                        resp.port,
                    ));
                }
            }
            let mut out = HashMap::new();
            for (key, code, message, node_id, host, port) in entries {
                let result = match KafkaCode::check(code) {
                    Ok(()) if node_id >= 0 => {
                        lock(&self.inner.coordinators).insert(kind, key.clone(), node_id);
                        if let Ok(port) = u16::try_from(port) {
                            lock(&self.inner.coordinator_addrs).insert(node_id, (host, port));
                        }
                        tracing::debug!(?kind, key, node_id, "coordinator found");
                        Ok(node_id)
                    }
                    Ok(()) => Err(Error::kafka(
                        KafkaCode::CoordinatorNotAvailable,
                        ErrorContext::new().coordinator(kind, key.clone()),
                    )),
                    Err(code) => Err(Error::Kafka {
                        context: Box::new(
                            ErrorContext::new()
                                .coordinator(kind, key.clone())
                                .broker(node)
                                .api(api),
                        ),
                        code,
                        message,
                    }),
                };
                out.insert(key, result);
            }
            Ok(out)
        }
        .instrument(span)
        .await
    }

    /// Closes every connection; later calls fail with [`Error::Closed`].
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.pool.close_all();
    }

    /// How many metadata refreshes completed (a coalesced call does not count).
    pub fn metadata_refreshes(&self) -> u64 {
        *lock(&self.inner.generation)
    }

    /// Number of open pooled connections (for tests and metrics).
    pub fn open_connections(&self) -> usize {
        self.inner.pool.open_connections()
    }
}

/// Whether a refresh for `done` answered everything a refresh for `wanted` would.
fn covers(done: &TopicSelection, wanted: &TopicSelection) -> bool {
    match (done, wanted) {
        (TopicSelection::All, _) => true,
        (TopicSelection::Named(_), TopicSelection::All) => false,
        (TopicSelection::Named(d), TopicSelection::Named(w)) => w.is_subset(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn client_is_send_and_sync() {
        fn is<T: Send + Sync>() {}
        is::<Client>();
    }

    fn named(names: &[&str]) -> TopicSelection {
        TopicSelection::Named(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn coverage_of_refreshes() {
        assert!(covers(&TopicSelection::All, &named(&["a"])));
        assert!(covers(&named(&["a", "b"]), &named(&["a"])));
        assert!(covers(&named(&["a"]), &named(&[])));
        assert!(!covers(&named(&["a"]), &named(&["b"])));
        assert!(!covers(&named(&["a"]), &TopicSelection::All));
    }

    #[tokio::test]
    async fn unreachable_bootstrap_fails_with_the_addresses_tried() {
        // Port 1 on loopback: refused at once.
        let config = ClientConfig::new(["127.0.0.1:1"])
            .unwrap()
            .with_default_api_timeout(Duration::from_millis(300));
        let client = Client::new(config).unwrap();
        let err = client.refresh_metadata::<&str>(&[]).await.unwrap_err();
        match &err {
            Error::Bootstrap { tried, last } => {
                assert_eq!(tried, &["127.0.0.1:1"]);
                assert!(last.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_retriable());
        let err = Client::connect(
            ClientConfig::new(["127.0.0.1:1"])
                .unwrap()
                .with_default_api_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    what: "bootstrap",
                    ..
                }
            ),
            "{err}"
        );
    }

    fn offline_client(timeout: Duration) -> Client {
        let config = ClientConfig::new(["127.0.0.1:1"])
            .unwrap()
            .with_default_api_timeout(timeout);
        Client::new(config).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn retry_backs_off_until_success() {
        let client = offline_client(Duration::from_secs(60));
        let start = Instant::now();
        let mut calls = 0;
        let got = client
            .retry("test", || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 4 {
                        Err(Error::kafka(
                            KafkaCode::LeaderNotAvailable,
                            ErrorContext::new(),
                        ))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 4);
        // Three waits of 100, 200, 400 ms, each within ±20 %.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(560) && waited <= Duration::from_millis(840),
            "{waited:?}"
        );
        // The stale-metadata code marked metadata for refresh.
        assert!(lock(&client.inner.metadata).needs_refresh(std::time::Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_non_retriable_errors_and_at_the_deadline() {
        let client = offline_client(Duration::from_secs(5));
        let mut calls = 0;
        let err = client
            .retry("test", || {
                calls += 1;
                async {
                    Err::<(), _>(Error::kafka(
                        KafkaCode::TopicAuthorizationFailed,
                        ErrorContext::new(),
                    ))
                }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.kafka_code(), Some(KafkaCode::TopicAuthorizationFailed));

        let start = Instant::now();
        let err = client
            .retry("test", || async {
                Err::<(), _>(Error::kafka(
                    KafkaCode::RequestTimedOut,
                    ErrorContext::new(),
                ))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { what: "test", .. }), "{err}");
        assert_eq!(err.kafka_code(), Some(KafkaCode::RequestTimedOut));
        assert!(start.elapsed() <= Duration::from_secs(5));
        // An operation that hangs is cut at the deadline.
        let start = Instant::now();
        let err = client
            .retry("hang", std::future::pending::<ClientResult<()>>)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Timeout {
                what: "hang",
                last: None,
                ..
            }
        ));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn coordinator_errors_drop_the_cached_coordinator() {
        let client = offline_client(Duration::from_secs(1));
        lock(&client.inner.coordinators).insert(CoordinatorKind::Group, "g", 3);
        lock(&client.inner.coordinators).insert(CoordinatorKind::Group, "h", 3);
        assert_eq!(
            client
                .coordinator(CoordinatorKind::Group, "g")
                .await
                .unwrap(),
            3
        );
        let err = client
            .check(
                KafkaCode::NotCoordinator.as_i16(),
                ErrorContext::new().coordinator(CoordinatorKind::Group, "g"),
            )
            .unwrap_err();
        assert!(err.needs_coordinator_refresh());
        assert_eq!(
            lock(&client.inner.coordinators).get(CoordinatorKind::Group, "g"),
            None
        );
        assert_eq!(
            lock(&client.inner.coordinators).get(CoordinatorKind::Group, "h"),
            Some(3)
        );
        // COORDINATOR_LOAD_IN_PROGRESS keeps it: the broker is the coordinator, just busy.
        let _ = client.check(
            KafkaCode::CoordinatorLoadInProgress.as_i16(),
            ErrorContext::new().coordinator(CoordinatorKind::Group, "h"),
        );
        assert_eq!(
            lock(&client.inner.coordinators).get(CoordinatorKind::Group, "h"),
            Some(3)
        );
    }

    #[tokio::test]
    async fn closed_client_refuses_work() {
        let client = Client::new(ClientConfig::new(["127.0.0.1:1"]).unwrap()).unwrap();
        client.close();
        assert!(matches!(
            client
                .send_to(
                    Target::AnyBroker,
                    kafka_protocol::messages::ApiVersionsRequest::default()
                )
                .await,
            Err(Error::Closed)
        ));
    }
}
