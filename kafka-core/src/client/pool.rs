//! The connection pool: one connection per broker and per workload class, made lazily,
//! shared by every caller, rebuilt once it is closed, with a reconnect backoff per slot
//! (`reconnect.backoff.ms`) so that a dead broker is not hammered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::backoff::{Backoff, BackoffConfig};
use crate::client::route::ConnectionClass;
use crate::net::{Connection, ConnectionConfig, NetError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poison carries no broken invariant.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which endpoint a pooled connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKey {
    /// A broker by node id (from metadata or FindCoordinator).
    Broker(i32),
    /// The n-th `bootstrap.servers` entry (before metadata names the brokers).
    Bootstrap(usize),
}

#[derive(Debug)]
struct SlotState {
    conn: Option<Connection>,
    addr: Option<(String, u16)>,
    backoff: Backoff,
    /// No connect attempt before this (after a failure).
    not_before: Option<Instant>,
    last_error: Option<Arc<NetError>>,
}

#[derive(Debug)]
struct Slot {
    // An async mutex: concurrent callers wanting the same connection wait for one connect
    // instead of racing to open several.
    state: tokio::sync::Mutex<SlotState>,
}

/// How a caller copes with a slot in reconnect backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffPolicy {
    /// Wait for the backoff to pass, if it passes before the deadline.
    Wait,
    /// Fail at once with the last connect error (the caller has other brokers to try).
    FailFast,
}

/// Connections per (endpoint, class).
#[derive(Debug)]
pub struct Pool {
    slots: Mutex<HashMap<(NodeKey, ConnectionClass), Arc<Slot>>>,
    config: Arc<ConnectionConfig>,
    reconnect: BackoffConfig,
}

impl Pool {
    /// An empty pool.
    pub fn new(config: Arc<ConnectionConfig>, reconnect: BackoffConfig) -> Self {
        Pool {
            slots: Mutex::new(HashMap::new()),
            config,
            reconnect,
        }
    }

    fn slot(&self, key: NodeKey, class: ConnectionClass) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        Arc::clone(slots.entry((key, class)).or_insert_with(|| {
            Arc::new(Slot {
                state: tokio::sync::Mutex::new(SlotState {
                    conn: None,
                    addr: None,
                    backoff: Backoff::new(self.reconnect),
                    not_before: None,
                    last_error: None,
                }),
            })
        }))
    }

    /// The open connection to `key` for `class`, connecting to `host:port` if there is none,
    /// if it closed, or if the broker's address changed.
    pub async fn get(
        &self,
        key: NodeKey,
        class: ConnectionClass,
        host: &str,
        port: u16,
        deadline: Instant,
        policy: BackoffPolicy,
    ) -> Result<Connection, Arc<NetError>> {
        let slot = self.slot(key, class);
        let mut st = slot.state.lock().await;
        if let Some(conn) = &st.conn {
            let same_addr = st
                .addr
                .as_ref()
                .is_some_and(|(h, p)| h == host && *p == port);
            if !conn.is_closed() && same_addr {
                return Ok(conn.clone());
            }
            if conn.is_closed() {
                tracing::debug!(
                    ?key,
                    ?class,
                    cause = ?conn.close_cause().map(|c| c.to_string()),
                    "connection closed; reconnecting"
                );
            } else {
                tracing::debug!(
                    ?key,
                    ?class,
                    host,
                    port,
                    "broker address changed; reconnecting"
                );
                conn.close();
            }
            st.conn = None;
        }
        if let Some(not_before) = st.not_before {
            let now = Instant::now();
            if not_before > now {
                if policy == BackoffPolicy::FailFast || not_before > deadline {
                    return Err(st.last_error.clone().unwrap_or_else(|| {
                        Arc::new(NetError::ConnectTimeout {
                            broker: format!("{host}:{port}"),
                            timeout: Duration::ZERO,
                        })
                    }));
                }
                tokio::time::sleep_until(not_before).await;
            }
        }
        match Connection::connect(host, port, Arc::clone(&self.config)).await {
            Ok(conn) => {
                st.backoff.reset();
                st.not_before = None;
                st.last_error = None;
                st.conn = Some(conn.clone());
                st.addr = Some((host.to_owned(), port));
                Ok(conn)
            }
            Err(e) => {
                let delay = st.backoff.next_delay();
                tracing::debug!(?key, ?class, host, port, error = %e, ?delay, "connect failed");
                let e = Arc::new(e);
                st.not_before = Some(Instant::now() + delay);
                st.last_error = Some(Arc::clone(&e));
                Err(e)
            }
        }
    }

    /// Closes and forgets every connection to `key`.
    pub fn remove(&self, key: NodeKey) {
        let removed: Vec<_> = {
            let mut slots = lock(&self.slots);
            let keys: Vec<_> = slots.keys().filter(|(k, _)| *k == key).copied().collect();
            keys.into_iter().filter_map(|k| slots.remove(&k)).collect()
        };
        for slot in removed {
            if let Ok(st) = slot.state.try_lock() {
                if let Some(c) = &st.conn {
                    c.close();
                }
            }
        }
    }

    /// The endpoints that have a slot (for pruning brokers that left).
    pub fn keys(&self) -> Vec<NodeKey> {
        let mut keys: Vec<_> = lock(&self.slots).keys().map(|(k, _)| *k).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Number of open connections (for tests and metrics).
    pub fn open_connections(&self) -> usize {
        lock(&self.slots)
            .values()
            .filter(|s| {
                s.state
                    .try_lock()
                    .map(|st| st.conn.as_ref().is_some_and(|c| !c.is_closed()))
                    .unwrap_or(false)
            })
            .count()
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        let slots: Vec<_> = lock(&self.slots).drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Ok(st) = slot.state.try_lock() {
                if let Some(c) = &st.conn {
                    c.close();
                }
            }
        }
    }
}
