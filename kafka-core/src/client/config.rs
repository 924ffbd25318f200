//! Settings of the cluster client, named after the Java client's properties.

use std::sync::Arc;
use std::time::Duration;

use crate::client::backoff::BackoffConfig;
use crate::client::error::Error;
use crate::net::ConnectionConfig;

/// One `bootstrap.servers` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BootstrapServer {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl BootstrapServer {
    /// Parses `host:port`, `[v6addr]:port` (brackets required for IPv6, as in the Java
    /// client). A port is required.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let bad = |why: &str| Error::Config {
            reason: format!("bootstrap server {s:?}: {why} (expected host:port or [ipv6]:port)"),
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = after.strip_prefix(':').ok_or_else(|| bad("missing port"))?;
            (host, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
            if host.contains(':') {
                return Err(bad("IPv6 addresses need brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(BootstrapServer {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for BootstrapServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Settings of a [`Client`](crate::client::Client).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `bootstrap.servers`. Every address a name resolves to is tried
    /// (`client.dns.lookup=use_all_dns_ips`, the Java default since 2.6).
    pub bootstrap_servers: Vec<BootstrapServer>,
    /// Settings of each broker connection (client id, timeouts, TLS, SASL).
    pub connection: Arc<ConnectionConfig>,
    /// `retry.backoff.ms` / `retry.backoff.max.ms`: between retries of a request.
    /// Default 100 ms growing to 1 s.
    pub retry_backoff: BackoffConfig,
    /// `reconnect.backoff.ms` / `reconnect.backoff.max.ms`: between connection attempts to
    /// one broker. Default 50 ms growing to 1 s.
    pub reconnect_backoff: BackoffConfig,
    /// `metadata.max.age.ms`: metadata older than this is refreshed. Default 5 minutes.
    pub metadata_max_age: Duration,
    /// `default.api.timeout.ms`: how long [`Client::retry`](crate::client::Client::retry)
    /// and the routing of `send_to` keep trying. Default 60 s.
    pub default_api_timeout: Duration,
}

impl ClientConfig {
    /// Settings with the given `bootstrap.servers` (`host:port` each) and defaults otherwise.
    pub fn new<I, S>(bootstrap_servers: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let servers = bootstrap_servers
            .into_iter()
            .flat_map(|s| {
                // Accept a Java-style comma-separated list in any element.
                s.as_ref()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(BootstrapServer::parse)
                    .collect::<Vec<_>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(Error::Config {
                reason: "bootstrap.servers is empty".to_owned(),
            });
        }
        Ok(ClientConfig {
            bootstrap_servers: servers,
            connection: Arc::new(ConnectionConfig::default()),
            retry_backoff: BackoffConfig::default(),
            reconnect_backoff: BackoffConfig {
                initial: Duration::from_millis(50),
                ..BackoffConfig::default()
            },
            metadata_max_age: Duration::from_secs(300),
            default_api_timeout: Duration::from_secs(60),
        })
    }

    /// Sets the connection settings.
    pub fn with_connection(mut self, connection: ConnectionConfig) -> Self {
        self.connection = Arc::new(connection);
        self
    }

    /// Sets `retry.backoff.ms` and `retry.backoff.max.ms`.
    pub fn with_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_backoff.initial = initial;
        self.retry_backoff.max = max;
        self
    }

    /// Sets `reconnect.backoff.ms` and `reconnect.backoff.max.ms`.
    pub fn with_reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_backoff.initial = initial;
        self.reconnect_backoff.max = max;
        self
    }

    /// Sets `metadata.max.age.ms`.
    pub fn with_metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// Sets `default.api.timeout.ms`.
    pub fn with_default_api_timeout(mut self, timeout: Duration) -> Self {
        self.default_api_timeout = timeout;
        self
    }

    /// Checks the combination.
    pub fn validate(&self) -> Result<(), Error> {
        if self.bootstrap_servers.is_empty() {
            return Err(Error::Config {
                reason: "bootstrap.servers is empty".to_owned(),
            });
        }
        if self.default_api_timeout.is_zero() {
            return Err(Error::Config {
                reason: "default.api.timeout.ms must be positive".to_owned(),
            });
        }
        self.connection.validate().map_err(|e| Error::Config {
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bootstrap_servers() {
        let c = ClientConfig::new(["a:1, b:2", "[::1]:9092", "10.0.0.1:9093"]).unwrap();
        let got: Vec<_> = c.bootstrap_servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, ["a:1", "b:2", "[::1]:9092", "10.0.0.1:9093"]);
        assert_eq!(c.bootstrap_servers[2].host, "::1");
        for bad in [
            "a", "a:", "a:x", ":1", "::1:9092", "[::1]", "[::1:9", "a:0", "a:70000",
        ] {
            assert!(BootstrapServer::parse(bad).is_err(), "{bad}");
        }
        assert!(ClientConfig::new(Vec::<String>::new()).is_err());
        assert!(ClientConfig::new([" , "]).is_err());
        assert!(c.validate().is_ok());
    }
}
