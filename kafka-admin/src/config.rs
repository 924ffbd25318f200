//! [`AdminConfig`]: the admin client's settings, a builder validated in `build()`, and
//! `from_properties` for Java-style keys.

use std::time::Duration;

use kafka_core::client::ClientConfig;
use kafka_core::net::ConnectionConfig;

use crate::error::{AdminError, Result};

/// Settings of an [`Admin`](crate::Admin) client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdminConfig {
    /// The cluster connection settings (bootstrap servers, TLS, SASL, retries).
    pub client: ClientConfig,
    /// `admin.operation.timeout.ms` (ours; the Java client takes it per call): how long the
    /// broker may work on an operation before answering (`timeout_ms` of CreateTopics,
    /// DeleteTopics, CreatePartitions, DeleteRecords, ElectLeaders, reassignments...).
    /// Default 30 s; at most `i32::MAX` ms.
    pub operation_timeout: Duration,
    /// `admin.reassignment.poll.ms` (ours): how often a followed reassignment is checked.
    /// Default 500 ms.
    pub reassignment_poll: Duration,
}

impl AdminConfig {
    /// Default admin settings over `client`.
    pub fn new(client: ClientConfig) -> Self {
        AdminConfig {
            client,
            operation_timeout: Duration::from_secs(30),
            reassignment_poll: Duration::from_millis(500),
        }
    }

    /// A builder.
    pub fn builder() -> AdminConfigBuilder {
        AdminConfigBuilder::default()
    }

    /// Settings from Java-style properties. Admin keys: `admin.operation.timeout.ms`,
    /// `admin.reassignment.poll.ms`. Client keys understood here until kafka-core parses
    /// them itself: `bootstrap.servers` (required), `client.id`, `request.timeout.ms`,
    /// `default.api.timeout.ms`. Any other key is an error naming the nearest known key.
    pub fn from_properties<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut b = AdminConfig::builder();
        for (k, v) in props {
            let (k, v) = (k.as_ref().trim(), v.as_ref().trim());
            match k {
                "bootstrap.servers" => b = b.bootstrap_servers(v.split(',')),
                "client.id" => b.client_id = Some(v.to_owned()),
                "request.timeout.ms" => b.request_timeout = Some(ms(k, v)?),
                "default.api.timeout.ms" => b.default_api_timeout = Some(ms(k, v)?),
                "admin.operation.timeout.ms" => b = b.operation_timeout(ms(k, v)?),
                "admin.reassignment.poll.ms" => b = b.reassignment_poll(ms(k, v)?),
                other => {
                    return Err(AdminError::Config {
                        reason: format!(
                            "unknown property {other:?}; did you mean {:?}?",
                            nearest(other, KNOWN_KEYS)
                        ),
                    })
                }
            }
        }
        b.build()
    }
}

const KNOWN_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "default.api.timeout.ms",
    "admin.operation.timeout.ms",
    "admin.reassignment.poll.ms",
];

fn ms(key: &str, v: &str) -> Result<Duration> {
    v.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| AdminError::Config {
            reason: format!("{key}={v:?} is not a number of milliseconds"),
        })
}

/// The known key closest to `key` (Levenshtein distance).
pub(crate) fn nearest<'a>(key: &str, known: &[&'a str]) -> &'a str {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known
        .iter()
        .min_by_key(|k| dist(key, k))
        .copied()
        .unwrap_or("")
}

/// Builder of [`AdminConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone, Default)]
pub struct AdminConfigBuilder {
    bootstrap: Vec<String>,
    client: Option<ClientConfig>,
    client_id: Option<String>,
    request_timeout: Option<Duration>,
    default_api_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    reassignment_poll: Option<Duration>,
}

impl AdminConfigBuilder {
    /// `bootstrap.servers` (ignored when [`client`](Self::client) is given).
    pub fn bootstrap_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.bootstrap
            .extend(servers.into_iter().map(|s| s.as_ref().trim().to_owned()));
        self
    }

    /// A complete cluster configuration (TLS, SASL...), instead of bootstrap servers.
    pub fn client(mut self, client: ClientConfig) -> Self {
        self.client = Some(client);
        self
    }

    /// `admin.operation.timeout.ms`; see [`AdminConfig::operation_timeout`].
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// `admin.reassignment.poll.ms`; see [`AdminConfig::reassignment_poll`].
    pub fn reassignment_poll(mut self, every: Duration) -> Self {
        self.reassignment_poll = Some(every);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<AdminConfig> {
        let mut client = match self.client {
            Some(c) => c,
            None => {
                let servers: Vec<&String> =
                    self.bootstrap.iter().filter(|s| !s.is_empty()).collect();
                if servers.is_empty() {
                    return Err(AdminError::Config {
                        reason: "bootstrap.servers is required".into(),
                    });
                }
                ClientConfig::new(servers)?
            }
        };
        if self.client_id.is_some() || self.request_timeout.is_some() {
            let mut conn: ConnectionConfig = (*client.connection).clone();
            if let Some(id) = self.client_id {
                conn = conn.with_client_id(id);
            }
            if let Some(t) = self.request_timeout {
                conn = conn.with_request_timeout(t);
            }
            client = client.with_connection(conn);
        }
        if let Some(t) = self.default_api_timeout {
            client = client.with_default_api_timeout(t);
        }
        let mut config = AdminConfig::new(client);
        if let Some(t) = self.operation_timeout {
            if t.is_zero() || t.as_millis() > i32::MAX as u128 {
                return Err(AdminError::Config {
                    reason: format!(
                        "admin.operation.timeout.ms must be between 1 and {} ms, not {t:?}",
                        i32::MAX
                    ),
                });
            }
            config.operation_timeout = t;
        }
        if let Some(p) = self.reassignment_poll {
            if p.is_zero() {
                return Err(AdminError::Config {
                    reason: "admin.reassignment.poll.ms must be positive".into(),
                });
            }
            config.reassignment_poll = p;
        }
        config.client.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_properties_parses_and_rejects_unknown_keys() {
        let c = AdminConfig::from_properties([
            ("bootstrap.servers", "a:9092,b:9093"),
            ("admin.operation.timeout.ms", "5000"),
        ])
        .unwrap();
        assert_eq!(c.operation_timeout, Duration::from_secs(5));
        assert_eq!(c.client.bootstrap_servers.len(), 2);
        let e = AdminConfig::from_properties([
            ("bootstrap.servers", "a:9092"),
            ("admin.operaton.timeout.ms", "5"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("admin.operation.timeout.ms"), "{e}");
        let e = AdminConfig::from_properties([
            ("bootstrap.servers", "a:9092"),
            ("admin.operation.timeout.ms", "x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("milliseconds"), "{e}");
    }

    #[test]
    fn build_validates() {
        assert!(AdminConfig::builder().build().is_err());
        assert!(AdminConfig::builder()
            .bootstrap_servers(["h:1"])
            .operation_timeout(Duration::ZERO)
            .build()
            .is_err());
        assert!(AdminConfig::builder()
            .bootstrap_servers(["h:1"])
            .build()
            .is_ok());
    }
}
