//! SASL authentication: SaslHandshake v1 then SaslAuthenticate (KIP-152), so that a failure
//! comes back as an error code and message instead of a closed socket.
//!
//! Mechanisms: PLAIN (RFC 4616), SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802/7677, KIP-84, with
//! the server signature verified), OAUTHBEARER (RFC 7628, KIP-255, with KIP-342 extensions)
//! from a token provider callback.
//!
//! Re-authentication (KIP-368): when SaslAuthenticate (v1+) reports a session lifetime, a
//! background task re-runs the exchange in band on the same connection at a random 85–95% of
//! that lifetime, as the Java client does. New requests wait while it runs (responses to
//! earlier ones still arrive); if it fails, the connection is closed with that error.

pub(crate) mod scram;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use ring::rand::SecureRandom;
use tracing::Instrument;

use crate::net::connection::Connection;
use crate::net::error::NetError;
use crate::net::versions::client_range;
use scram::{ScramClient, ScramHash};

/// An error from a token provider.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An OAUTHBEARER token and its SASL extensions (KIP-342).
#[derive(Clone)]
pub struct OAuthBearerToken {
    value: String,
    extensions: Vec<(String, String)>,
}

impl fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("value", &"<redacted>")
            .field("extensions", &self.extensions)
            .finish()
    }
}

impl OAuthBearerToken {
    /// A bearer token (typically a JWT).
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            extensions: Vec::new(),
        }
    }

    /// Adds a SASL extension (`key` letters only, not `auth`).
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.push((key.into(), value.into()));
        self
    }

    /// The token.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The client's initial response (RFC 7628 §3.1): `n,,^Aauth=Bearer <token>^A[k=v^A]...^A`.
    fn initial_response(&self) -> Result<Vec<u8>, String> {
        let printable = |s: &str| s.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if self.value.is_empty() || !printable(&self.value) {
            return Err(
                "the OAUTHBEARER token is empty or has non-printable characters".to_owned(),
            );
        }
        let mut out = format!("n,,\x01auth=Bearer {}", self.value);
        for (k, v) in &self.extensions {
            if k.is_empty() || k == "auth" || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("invalid OAUTHBEARER extension name {k:?}"));
            }
            if !v
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
            {
                return Err(format!("invalid value for OAUTHBEARER extension {k:?}"));
            }
            out.push_str(&format!("\x01{k}={v}"));
        }
        out.push_str("\x01\x01");
        Ok(out.into_bytes())
    }
}

/// Supplies OAUTHBEARER tokens; called for every authentication and re-authentication, so it
/// should cache tokens and refresh them before they expire.
///
/// A plain closure `Fn() -> Result<OAuthBearerToken, BoxError>` is a provider; implement the
/// trait for an asynchronous one (an OIDC client, say).
pub trait OAuthBearerTokenProvider: Send + Sync {
    /// A current token.
    fn token(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<OAuthBearerToken, BoxError>> + Send + '_>>;
}

impl<F> OAuthBearerTokenProvider for F
where
    F: Fn() -> Result<OAuthBearerToken, BoxError> + Send + Sync,
{
    fn token(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<OAuthBearerToken, BoxError>> + Send + '_>> {
        let token = self();
        Box::pin(async move { token })
    }
}

#[derive(Clone)]
enum Mechanism {
    Plain {
        username: String,
        password: String,
    },
    Scram {
        hash: ScramHash,
        username: String,
        password: String,
    },
    OAuthBearer {
        provider: Arc<dyn OAuthBearerTokenProvider>,
    },
}

/// SASL settings (`sasl.mechanism`, `sasl.jaas.config`).
#[derive(Clone)]
pub struct SaslConfig {
    mechanism: Mechanism,
    allow_plain_without_tls: bool,
    reauthenticate: bool,
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = match &self.mechanism {
            Mechanism::Plain { username, .. } | Mechanism::Scram { username, .. } => {
                Some(username.as_str())
            }
            Mechanism::OAuthBearer { .. } => None,
        };
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism_name())
            .field("username", &user)
            .field("password", &"<redacted>")
            .field("allow_plain_without_tls", &self.allow_plain_without_tls)
            .field("reauthenticate", &self.reauthenticate)
            .finish()
    }
}

impl SaslConfig {
    fn new(mechanism: Mechanism) -> Self {
        Self {
            mechanism,
            allow_plain_without_tls: false,
            reauthenticate: true,
        }
    }

    /// PLAIN: the password travels as is, so TLS is required unless
    /// [`SaslConfig::dangerous_allow_plain_without_tls`] is set.
    pub fn plain(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(Mechanism::Plain {
            username: username.into(),
            password: password.into(),
        })
    }

    /// SCRAM-SHA-256.
    pub fn scram_sha256(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(Mechanism::Scram {
            hash: ScramHash::Sha256,
            username: username.into(),
            password: password.into(),
        })
    }

    /// SCRAM-SHA-512.
    pub fn scram_sha512(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(Mechanism::Scram {
            hash: ScramHash::Sha512,
            username: username.into(),
            password: password.into(),
        })
    }

    /// OAUTHBEARER with tokens from `provider`.
    pub fn oauthbearer(provider: impl OAuthBearerTokenProvider + 'static) -> Self {
        Self::new(Mechanism::OAuthBearer {
            provider: Arc::new(provider),
        })
    }

    /// Allow PLAIN over a connection without TLS (SASL_PLAINTEXT): anyone on the path reads
    /// the password. For test clusters only.
    pub fn dangerous_allow_plain_without_tls(mut self) -> Self {
        self.allow_plain_without_tls = true;
        self
    }

    /// Do not re-authenticate before the session expires (KIP-368); the broker then closes
    /// the connection when the session ends. Default: re-authenticate.
    pub fn without_reauthentication(mut self) -> Self {
        self.reauthenticate = false;
        self
    }

    /// The mechanism's SASL name.
    pub fn mechanism_name(&self) -> &'static str {
        match &self.mechanism {
            Mechanism::Plain { .. } => "PLAIN",
            Mechanism::Scram { hash, .. } => hash.mechanism(),
            Mechanism::OAuthBearer { .. } => "OAUTHBEARER",
        }
    }

    /// Checks the combination with TLS.
    pub(crate) fn validate(&self, tls: bool) -> Result<(), NetError> {
        if matches!(self.mechanism, Mechanism::Plain { .. })
            && !tls
            && !self.allow_plain_without_tls
        {
            return Err(NetError::Config {
                reason:
                    "SASL PLAIN without TLS sends the password in clear text: configure TLS \
                         (SASL_SSL), or opt in with SaslConfig::dangerous_allow_plain_without_tls()"
                        .to_owned(),
            });
        }
        Ok(())
    }
}

/// One exchange in progress.
enum Exchange {
    Plain,
    Scram {
        client: ScramClient,
        sent_final: bool,
    },
    OAuthBearer,
}

impl Exchange {
    /// Starts an exchange: the first message to send.
    async fn start(config: &SaslConfig) -> Result<(Exchange, Vec<u8>), String> {
        match &config.mechanism {
            Mechanism::Plain { username, password } => {
                let mut msg = Vec::with_capacity(username.len() + password.len() + 2);
                msg.push(0);
                msg.extend_from_slice(username.as_bytes());
                msg.push(0);
                msg.extend_from_slice(password.as_bytes());
                Ok((Exchange::Plain, msg))
            }
            Mechanism::Scram {
                hash,
                username,
                password,
            } => {
                let mut client = ScramClient::new(*hash, username, password)?;
                let first = client.client_first();
                Ok((
                    Exchange::Scram {
                        client,
                        sent_final: false,
                    },
                    first,
                ))
            }
            Mechanism::OAuthBearer { provider } => {
                let token = provider
                    .token()
                    .await
                    .map_err(|e| format!("the token provider failed: {e}"))?;
                Ok((Exchange::OAuthBearer, token.initial_response()?))
            }
        }
    }

    /// Takes the server's bytes: the next message, or `None` when the exchange is complete.
    fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            Exchange::Plain => Ok(None),
            Exchange::Scram { client, sent_final } => {
                if *sent_final {
                    client.handle_server_final(server)?;
                    Ok(None)
                } else {
                    *sent_final = true;
                    client.handle_server_first(server).map(Some)
                }
            }
            Exchange::OAuthBearer => {
                if server.is_empty() {
                    Ok(None)
                } else {
                    // RFC 7628 §3.2.2: an error challenge (JSON status).
                    Err(format!(
                        "the broker rejected the token: {}",
                        String::from_utf8_lossy(server)
                    ))
                }
            }
        }
    }
}

/// Authenticates a freshly negotiated connection when SASL is configured, and schedules
/// re-authentication.
pub(crate) async fn authenticate_new(conn: &Connection) -> Result<(), NetError> {
    let Some(sasl) = conn.config().sasl.clone() else {
        return Ok(());
    };
    let lifetime = exchange(conn, &sasl).await?;
    if sasl.reauthenticate {
        if let Some(lifetime) = lifetime {
            schedule_reauthentication(conn, sasl, lifetime);
        }
    }
    Ok(())
}

/// Runs SaslHandshake + SaslAuthenticate; returns the session lifetime, if the broker set one.
async fn exchange(conn: &Connection, sasl: &SaslConfig) -> Result<Option<Duration>, NetError> {
    let span = tracing::debug_span!(
        "kafka_sasl",
        mechanism = sasl.mechanism_name(),
        broker = %conn.broker_addr()
    );
    exchange_inner(conn, sasl).instrument(span).await
}

async fn exchange_inner(
    conn: &Connection,
    sasl: &SaslConfig,
) -> Result<Option<Duration>, NetError> {
    let link = conn.link();
    let broker = link.broker.to_string();
    let mechanism = sasl.mechanism_name();
    let unsupported = |api_key: ApiKey| NetError::UnsupportedVersion {
        broker: broker.clone(),
        api: if api_key == ApiKey::SaslHandshake {
            "SaslHandshake v1"
        } else {
            "SaslAuthenticate"
        },
        api_key: api_key as i16,
        version: None,
        broker_range: conn.api_versions().broker_range(api_key as i16),
        client_range: client_range(api_key as i16),
    };
    // v1 means "SaslAuthenticate follows" (KIP-152, Kafka 1.0+).
    let hv = conn
        .max_version(ApiKey::SaslHandshake as i16)
        .filter(|v| *v >= 1)
        .ok_or_else(|| unsupported(ApiKey::SaslHandshake))?;
    let av = conn
        .max_version(ApiKey::SaslAuthenticate as i16)
        .ok_or_else(|| unsupported(ApiKey::SaslAuthenticate))?;
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let resp = link.request(&handshake, hv).await?;
    if resp.error_code != 0 {
        return Err(NetError::UnsupportedSaslMechanism {
            broker,
            mechanism,
            enabled: resp.mechanisms.iter().map(|m| m.to_string()).collect(),
        });
    }
    let sasl_error = |reason: String| NetError::Sasl {
        broker: broker.clone(),
        mechanism,
        reason,
    };
    let (mut state, mut out) = Exchange::start(sasl).await.map_err(sasl_error)?;
    loop {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out));
        let resp = link.request(&req, av).await?;
        if resp.error_code != 0 {
            return Err(NetError::AuthenticationFailed {
                broker,
                mechanism,
                error_code: resp.error_code,
                message: resp
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            });
        }
        match state.step(&resp.auth_bytes).map_err(sasl_error)? {
            Some(next) => out = next,
            None => {
                let lifetime = (resp.session_lifetime_ms > 0)
                    .then(|| Duration::from_millis(resp.session_lifetime_ms as u64));
                tracing::debug!(broker = %broker, mechanism, ?lifetime, "SASL authenticated");
                return Ok(lifetime);
            }
        }
    }
}

/// When to re-authenticate: a uniformly random point in 85–95% of the session lifetime
/// (KIP-368, as the Java client), so that connections opened together do not re-authenticate
/// together.
pub(crate) fn reauthentication_delay(lifetime: Duration) -> Duration {
    let mut raw = [0u8; 8];
    let unit = match ring::rand::SystemRandom::new().fill(&mut raw) {
        Ok(()) => (u64::from_le_bytes(raw) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    };
    lifetime.mul_f64(0.85 + 0.10 * unit)
}

fn schedule_reauthentication(conn: &Connection, sasl: SaslConfig, lifetime: Duration) {
    let weak = conn.weak();
    let task = tokio::spawn(async move {
        let mut lifetime = lifetime;
        loop {
            tokio::time::sleep(reauthentication_delay(lifetime)).await;
            let Some(conn) = weak.upgrade() else {
                return;
            };
            if conn.is_closed() {
                return;
            }
            let result = {
                // Hold back new requests while the exchange runs.
                let _gate = conn.shared_gate().write().await;
                tracing::debug!(broker = %conn.broker_addr(), "re-authenticating (KIP-368)");
                exchange(&conn, &sasl).await
            };
            match result {
                Ok(Some(next)) => lifetime = next,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(broker = %conn.broker_addr(), error = %e, "re-authentication failed");
                    conn.link().io.poison(e);
                    return;
                }
            }
        }
    });
    conn.add_task(task.abort_handle());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauthentication_is_jittered_within_85_to_95_percent() {
        let lifetime = Duration::from_secs(1000);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = reauthentication_delay(lifetime);
            assert!(
                d >= Duration::from_secs(850) && d <= Duration::from_secs(950),
                "{d:?}"
            );
            seen.insert(d.as_secs());
        }
        assert!(seen.len() > 20, "jittered");
    }

    #[test]
    fn oauthbearer_initial_response() {
        let t = OAuthBearerToken::new("abc.def").with_extension("traceId", "x 1");
        assert_eq!(
            t.initial_response().unwrap(),
            b"n,,\x01auth=Bearer abc.def\x01traceId=x 1\x01\x01"
        );
        assert!(OAuthBearerToken::new("a b").initial_response().is_err());
        assert!(OAuthBearerToken::new("a")
            .with_extension("auth", "x")
            .initial_response()
            .is_err());
    }

    #[test]
    fn plain_requires_tls_or_an_explicit_opt_in() {
        let p = SaslConfig::plain("u", "p");
        assert!(matches!(p.validate(false), Err(NetError::Config { .. })));
        assert!(p.validate(true).is_ok());
        assert!(p
            .dangerous_allow_plain_without_tls()
            .validate(false)
            .is_ok());
        assert!(SaslConfig::scram_sha512("u", "p").validate(false).is_ok());
        let dbg = format!("{:?}", SaslConfig::scram_sha256("u", "hunter2"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
