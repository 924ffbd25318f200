//! [`AdminConfig`]: the admin client's settings, a builder validated in `build()`, and
//! `from_properties` for Java-style keys.

use std::time::Duration;

use kafka_core::client::properties::{Properties, CLIENT_KEYS};
use kafka_core::client::ClientConfig;

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

    /// Settings from Java-style properties: the admin keys `admin.operation.timeout.ms` and
    /// `admin.reassignment.poll.ms`, and every common client key
    /// ([`ClientConfig::from_properties`]: `bootstrap.servers` (required), `client.id`,
    /// `security.protocol`, `ssl.*`, `sasl.*`, timeouts, backoffs...). Any other key is an
    /// error naming the nearest known key.
    pub fn from_properties<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::from_props(Properties::new(props))
    }

    /// [`from_properties`](Self::from_properties) over a [`Properties`] set (a parsed
    /// `.properties` file, say).
    pub fn from_props(mut props: Properties) -> Result<Self> {
        let operation_timeout = props.take_millis("admin.operation.timeout.ms")?;
        let reassignment_poll = props.take_millis("admin.reassignment.poll.ms")?;
        let client = ClientConfig::from_properties(&mut props)?;
        let known: Vec<&str> = CLIENT_KEYS.iter().chain(ADMIN_KEYS).copied().collect();
        props.finish(&known)?;
        let mut b = AdminConfig::builder().client(client);
        if let Some(t) = operation_timeout {
            b = b.operation_timeout(t);
        }
        if let Some(p) = reassignment_poll {
            b = b.reassignment_poll(p);
        }
        b.build()
    }
}

/// The admin-specific keys of [`AdminConfig::from_properties`].
pub const ADMIN_KEYS: &[&str] = &["admin.operation.timeout.ms", "admin.reassignment.poll.ms"];

/// Builder of [`AdminConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone, Default)]
pub struct AdminConfigBuilder {
    bootstrap: Vec<String>,
    client: Option<ClientConfig>,
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
        let client = match self.client {
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
        // Common client keys go to kafka-core's parser.
        let c = AdminConfig::from_properties([
            ("bootstrap.servers", "a:9092"),
            ("client.id", "ops"),
            ("retry.backoff.ms", "250"),
        ])
        .unwrap();
        assert_eq!(c.client.connection.client_id.as_deref(), Some("ops"));
        assert_eq!(c.client.retry_backoff.initial, Duration::from_millis(250));
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
