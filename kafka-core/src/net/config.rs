//! Settings of one broker connection, named after the Java client's properties.

use std::time::Duration;

use crate::codec::frame::DEFAULT_MAX_FRAME_SIZE;
use crate::net::error::NetError;
use crate::net::sasl::SaslConfig;
use crate::net::tls::TlsConfig;

/// Settings of a broker connection. Build with [`ConnectionConfig::default`] and the
/// `with_*` methods; share it between connections as an `Arc`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// `client.id`: sent in every request header, shows up in broker logs and quotas.
    /// Default: none (a null client id).
    pub client_id: Option<String>,
    /// KIP-511 `client.software.name`, sent in ApiVersions v3+. Default `kafka-rs`.
    /// Must match `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?` or the broker refuses it.
    pub client_software_name: String,
    /// KIP-511 `client.software.version`. Default: this crate's version. Same character rule.
    pub client_software_version: String,
    /// `socket.connection.setup.timeout.ms`: TCP connect plus TLS handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// `request.timeout.ms`: how long one request waits for its response, counted from the
    /// end of any throttle delay. Default 30 s. ApiVersions and SASL requests use it too.
    pub request_timeout: Duration,
    /// `receive.message.max.bytes`: the largest response frame accepted, checked before
    /// anything is allocated. Default 100 MB.
    pub max_frame_size: usize,
    /// TLS (`security.protocol` `SSL` or `SASL_SSL`). Default: none (plaintext).
    pub tls: Option<TlsConfig>,
    /// SASL (`security.protocol` `SASL_PLAINTEXT` or, with `tls`, `SASL_SSL`). Default: none.
    pub sasl: Option<SaslConfig>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: None,
            client_software_name: "kafka-rs".to_owned(),
            client_software_version: env!("CARGO_PKG_VERSION").to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            tls: None,
            sasl: None,
        }
    }
}

impl ConnectionConfig {
    /// Sets `client.id`.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets the KIP-511 software name and version.
    pub fn with_client_software(
        mut self,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        self.client_software_name = name.into();
        self.client_software_version = version.into();
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the maximum response frame size.
    pub fn with_max_frame_size(mut self, max: usize) -> Self {
        self.max_frame_size = max;
        self
    }

    /// Connects with TLS.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Authenticates with SASL.
    pub fn with_sasl(mut self, sasl: SaslConfig) -> Self {
        self.sasl = Some(sasl);
        self
    }

    /// Checks the combination; `connect` calls it.
    pub fn validate(&self) -> Result<(), NetError> {
        for (what, value) in [
            ("client_software_name", &self.client_software_name),
            ("client_software_version", &self.client_software_version),
        ] {
            if !is_valid_software_field(value) {
                return Err(NetError::Config {
                    reason: format!(
                        "{what} {value:?} must match [a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])? \
                         (KIP-511); brokers reject anything else"
                    ),
                });
            }
        }
        if self.max_frame_size < 1024 {
            return Err(NetError::Config {
                reason: format!("max_frame_size {} is too small", self.max_frame_size),
            });
        }
        if let Some(tls) = &self.tls {
            tls.client_config()?;
        }
        if let Some(sasl) = &self.sasl {
            sasl.validate(self.tls.is_some())?;
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(NetError::Config {
                reason: "timeouts must be positive".to_owned(),
            });
        }
        Ok(())
    }
}

/// KIP-511's rule for the software name and version.
fn is_valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'.')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_name_rule() {
        assert!(ConnectionConfig::default().validate().is_ok());
        for ok in ["a", "kafka-rs", "1.2.3-rc.1"] {
            assert!(is_valid_software_field(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a_b", "é"] {
            assert!(!is_valid_software_field(bad), "{bad}");
        }
        let bad = ConnectionConfig::default().with_client_software("my app", "1");
        assert!(matches!(bad.validate(), Err(NetError::Config { .. })));
    }
}
