//! The connection layer's one error type.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::error::CodecError;

/// Why a TLS handshake (or a TLS read) failed, for callers that want to react to the kind
/// rather than parse the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's certificate chain does not lead to a trusted root (wrong or missing CA).
    UnknownIssuer,
    /// The certificate is valid, but not for the name the client connected to (SAN mismatch).
    NameMismatch,
    /// The certificate is expired or not yet valid.
    Expired,
    /// Some other certificate problem (bad signature, wrong usage, revoked...).
    BadCertificate,
    /// The broker sent a fatal TLS alert (for example, it wanted a client certificate).
    AlertReceived,
    /// The peer did not speak TLS (a TLS client on a plaintext listener, typically).
    NotTls,
    /// The TLS configuration itself is unusable (unreadable PEM, key not matching, ...).
    Config,
    /// Anything else rustls reported.
    Other,
}

/// Everything that can go wrong on one broker connection.
///
/// Errors that end the connection are reported once as the *cause* and then, to every request
/// that was in flight or comes later, as [`NetError::Closed`] carrying that same cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The configuration cannot work (an invalid client software name, PLAIN over plaintext
    /// without the explicit opt-in, ...).
    #[error("invalid connection configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Resolving or connecting the TCP socket failed.
    #[error("cannot connect to {broker}: {source}")]
    Connect {
        /// `host:port`.
        broker: String,
        /// The socket error (connection refused, no route, DNS failure...).
        #[source]
        source: io::Error,
    },
    /// TCP connect plus TLS handshake took longer than `connect_timeout`.
    #[error("connecting to {broker} timed out after {timeout:?}")]
    ConnectTimeout {
        /// `host:port`.
        broker: String,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// TLS failed: handshake, certificate verification or configuration.
    #[error("TLS with {broker} failed ({kind:?}): {message}")]
    Tls {
        /// `host:port` (empty for configuration errors found before connecting).
        broker: String,
        /// What kind of failure.
        kind: TlsFailure,
        /// A human-readable explanation.
        message: String,
    },
    /// The broker answered a plaintext request with TLS bytes: the listener expects TLS.
    #[error(
        "{broker} answered with a TLS record instead of a Kafka frame: the listener expects TLS \
         (security.protocol SSL or SASL_SSL); configure `tls` on the connection"
    )]
    TlsExpected {
        /// `host:port`.
        broker: String,
    },
    /// A request got no response within `request_timeout`. The connection stays usable; a late
    /// response is discarded.
    #[error("{api} v{version} (correlation id {correlation_id}) to {broker} timed out after {timeout:?}")]
    Timeout {
        /// `host:port`.
        broker: String,
        /// The API's name.
        api: &'static str,
        /// The version sent.
        version: i16,
        /// The request's correlation id.
        correlation_id: i32,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The broker (or this client) does not support the API at the requested version.
    #[error(
        "{broker} cannot serve {api} (key {api_key}){}: broker supports {}, this client {}",
        .version.map(|v| format!(" v{v}")).unwrap_or_default(),
        fmt_range(*.broker_range),
        fmt_range(*.client_range)
    )]
    UnsupportedVersion {
        /// `host:port`.
        broker: String,
        /// The API's name.
        api: &'static str,
        /// The API key.
        api_key: i16,
        /// The version asked for, if one was.
        version: Option<i16>,
        /// What the broker advertised in ApiVersions (`None`: not at all).
        broker_range: Option<(i16, i16)>,
        /// What this client (`kafka-protocol`) can encode (`None`: unknown API).
        client_range: Option<(i16, i16)>,
    },
    /// The ApiVersions exchange failed with a Kafka error code.
    #[error("ApiVersions with {broker} failed with error code {error_code}")]
    ApiVersions {
        /// `host:port`.
        broker: String,
        /// The Kafka error code.
        error_code: i16,
    },
    /// The broker does not enable the configured SASL mechanism (SaslHandshake refused it).
    #[error("{broker} does not enable SASL mechanism {mechanism}; it enables {enabled:?}")]
    UnsupportedSaslMechanism {
        /// `host:port`.
        broker: String,
        /// The configured mechanism.
        mechanism: &'static str,
        /// The mechanisms the broker listed.
        enabled: Vec<String>,
    },
    /// The broker rejected the credentials (SaslAuthenticate error, KIP-152). Not retriable.
    #[error("authentication with {broker} using {mechanism} failed (error code {error_code}): {message}")]
    AuthenticationFailed {
        /// `host:port`.
        broker: String,
        /// The mechanism used.
        mechanism: &'static str,
        /// The Kafka error code (58 = SASL_AUTHENTICATION_FAILED, typically).
        error_code: i16,
        /// The broker's message.
        message: String,
    },
    /// The SASL exchange itself went wrong on the client side: a server SCRAM signature that
    /// does not verify, a server `e=` error, a malformed challenge, a token provider failure.
    #[error("SASL {mechanism} with {broker} failed: {reason}")]
    Sasl {
        /// `host:port`.
        broker: String,
        /// The mechanism used.
        mechanism: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// `send` was called with a request the broker never answers (Produce with `acks=0`):
    /// use [`Connection::send_no_response`](crate::net::Connection::send_no_response).
    #[error("{api} with acks=0 gets no response: use Connection::send_no_response")]
    NoResponseExpected {
        /// The API's name.
        api: &'static str,
    },
    /// A response could not be decoded (or a request encoded).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Reading or writing the socket failed.
    #[error("I/O error on the connection to {broker}: {source}")]
    Io {
        /// `host:port`.
        broker: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The broker closed the connection. While connecting this usually means a security
    /// protocol mismatch (a plaintext client on a TLS or SASL listener) or a rejected request.
    #[error(
        "{broker} closed the connection{}",
        if *.while_connecting {
            " while connecting (wrong security protocol for this listener, e.g. plaintext \
             client on a TLS or SASL port?)"
        } else { "" }
    )]
    ClosedByBroker {
        /// `host:port`.
        broker: String,
        /// Whether the connection had not finished its setup (ApiVersions, SASL) yet.
        while_connecting: bool,
    },
    /// A response carried a correlation id that no request in flight (or abandoned) has.
    #[error("{broker} sent a response with unknown correlation id {correlation_id}")]
    UnknownCorrelationId {
        /// `host:port`.
        broker: String,
        /// The id read off the wire.
        correlation_id: i32,
    },
    /// The connection was poisoned earlier: every request in flight then and every request
    /// since fails with this, carrying the same first cause. Build a new connection.
    #[error("connection to {broker} is closed: {cause}")]
    Closed {
        /// `host:port`.
        broker: String,
        /// The error that ended the connection.
        cause: Arc<NetError>,
    },
}

fn fmt_range(r: Option<(i16, i16)>) -> String {
    match r {
        Some((min, max)) => format!("v{min}..=v{max}"),
        None => "no version".to_owned(),
    }
}

impl NetError {
    /// The error that ended the connection, for [`NetError::Closed`]; `self` otherwise.
    pub fn root_cause(&self) -> &NetError {
        match self {
            NetError::Closed { cause, .. } => cause.root_cause(),
            other => other,
        }
    }

    /// Whether trying again (on a new connection, for errors that closed this one) can
    /// succeed without a change of configuration.
    ///
    /// Authentication, TLS verification, version and configuration errors are not retriable:
    /// retrying them only hammers the broker (KIP-152). A timeout is retriable, though the
    /// request may have been processed.
    pub fn is_retriable(&self) -> bool {
        match self.root_cause() {
            NetError::Connect { .. }
            | NetError::ConnectTimeout { .. }
            | NetError::Timeout { .. }
            | NetError::Io { .. }
            | NetError::ClosedByBroker { .. }
            | NetError::UnknownCorrelationId { .. } => true,
            // A frame cut or garbled in transit: a new connection may do better. A request
            // that cannot be encoded (a field the negotiated version lacks, say) fails the
            // same way every time.
            NetError::Codec(e) => e.is_wire_corruption(),
            NetError::Tls { kind, .. } => matches!(kind, TlsFailure::Other),
            _ => false,
        }
    }
}
