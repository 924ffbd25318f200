//! One broker connection: tokio I/O, TLS, SASL, version negotiation and pipelining.
//!
//! [`Connection::connect`] opens TCP (`TCP_NODELAY`), optionally TLS, then negotiates API
//! versions with ApiVersions (KIP-35; KIP-511 adds the client software name and version and
//! the UNSUPPORTED_VERSION fallback: a broker that does not know our ApiVersions version
//! answers in the v0 format with its own range, and we retry at the highest version it
//! offers), then authenticates with SASL when configured (SaslHandshake v1 +
//! SaslAuthenticate, KIP-152; PLAIN, SCRAM-SHA-256/512 (RFC 5802/7677, KIP-84), OAUTHBEARER
//! (KIP-255)), re-authenticating in band before the session expires (KIP-368).
//!
//! Many requests may be in flight on one connection; responses are matched by correlation
//! id. A framing error, an unknown correlation id or an I/O error poisons the connection:
//! every request in flight and every later one fails with [`NetError::Closed`] carrying the
//! same cause, and [`Connection::is_closed`] turns true so that a pool can replace it.
//! Throttled responses (KIP-219) hold back later requests until the throttle time is over.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kafka_core::net::NetError> {
//! use std::sync::Arc;
//! use kafka_core::net::{Connection, ConnectionConfig};
//! use kafka_protocol::messages::MetadataRequest;
//!
//! let config = Arc::new(ConnectionConfig::default().with_client_id("demo"));
//! let conn = Connection::connect("127.0.0.1", 9092, config).await?;
//! let metadata = conn.send(MetadataRequest::default()).await?;
//! println!("{} brokers", metadata.brokers.len());
//! # Ok(()) }
//! ```

mod config;
mod connection;
mod error;
mod sasl;
mod throttle;
mod tls;
mod versions;

#[cfg(test)]
mod tests;

pub use config::ConnectionConfig;
pub use connection::{BrokerAddr, Connection, PendingResponse};
pub use error::{NetError, TlsFailure};
pub use sasl::{BoxError, OAuthBearerToken, OAuthBearerTokenProvider, SaslConfig};
pub use tls::TlsConfig;
pub use versions::{ApiVersionRange, ApiVersionsTable};
