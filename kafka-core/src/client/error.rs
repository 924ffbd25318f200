//! The cluster layer's one error type: connection, codec and Kafka errors, with the context
//! (broker, API, topic, partition, coordinator key) a user needs to act on them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::client::route::CoordinatorKind;
use crate::error::CodecError;
use crate::kafka_error::KafkaCode;
use crate::net::NetError;

/// Where an error happened: filled in as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorContext {
    /// The broker's node id (`None` for a bootstrap server or before routing).
    pub broker: Option<i32>,
    /// The API's name (`Produce`, `Metadata`, ...).
    pub api: Option<&'static str>,
    /// The topic concerned.
    pub topic: Option<String>,
    /// The partition concerned.
    pub partition: Option<i32>,
    /// The coordinator concerned: kind and key (group id, transactional id).
    pub coordinator: Option<(CoordinatorKind, String)>,
}

impl ErrorContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// With the broker set.
    pub fn broker(mut self, broker: i32) -> Self {
        self.broker = Some(broker);
        self
    }

    /// With the API set.
    pub fn api(mut self, api: &'static str) -> Self {
        self.api = Some(api);
        self
    }

    /// With topic and partition set.
    pub fn partition(mut self, topic: impl Into<String>, partition: i32) -> Self {
        self.topic = Some(topic.into());
        self.partition = Some(partition);
        self
    }

    /// With the topic set.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// With the coordinator set.
    pub fn coordinator(mut self, kind: CoordinatorKind, key: impl Into<String>) -> Self {
        self.coordinator = Some((kind, key.into()));
        self
    }
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        let mut part = |f: &mut fmt::Formatter<'_>, args: fmt::Arguments<'_>| {
            let r = write!(f, "{sep}{args}");
            sep = ", ";
            r
        };
        if let Some(api) = self.api {
            part(f, format_args!("{api}"))?;
        }
        if let Some(b) = self.broker {
            part(f, format_args!("broker {b}"))?;
        }
        match (&self.topic, self.partition) {
            (Some(t), Some(p)) => part(f, format_args!("{t}-{p}"))?,
            (Some(t), None) => part(f, format_args!("topic {t}"))?,
            _ => {}
        }
        if let Some((kind, key)) = &self.coordinator {
            part(f, format_args!("{kind:?} coordinator for {key:?}"))?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in the cluster layer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (a malformed bootstrap address, say).
    #[error("invalid client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// A broker connection failed (connect, TLS, SASL, I/O, timeout...).
    #[error("[{context}] {source}")]
    Net {
        /// Where.
        context: Box<ErrorContext>,
        /// The connection error (shared: one connection failure may fail many requests).
        #[source]
        source: Arc<NetError>,
    },
    /// Encoding or decoding failed outside a connection.
    #[error("[{context}] {source}")]
    Codec {
        /// Where.
        context: Box<ErrorContext>,
        /// The codec error.
        #[source]
        source: CodecError,
    },
    /// A broker answered with a Kafka error code.
    #[error("[{context}] {code}{}", .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// Where.
        context: Box<ErrorContext>,
        /// The code.
        code: KafkaCode,
        /// The broker's error message, when the response has one.
        message: Option<String>,
    },
    /// No bootstrap server could be reached.
    #[error("no bootstrap server reachable (tried {tried:?}){}", .last.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Bootstrap {
        /// The addresses tried.
        tried: Vec<String>,
        /// The last connection error.
        last: Option<Arc<NetError>>,
    },
    /// The target cannot be routed with the metadata at hand (no leader, unknown broker...).
    #[error("[{context}] cannot route: {reason}")]
    Unroutable {
        /// Where.
        context: Box<ErrorContext>,
        /// Why.
        reason: &'static str,
        /// The Kafka code that explains it, when metadata gave one (`LEADER_NOT_AVAILABLE`,
        /// `UNKNOWN_TOPIC_OR_PARTITION`).
        code: Option<KafkaCode>,
    },
    /// A deadline (`default.api.timeout.ms`) passed while retrying.
    #[error("{what} timed out after {elapsed:?}{}", .last.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// How long it ran.
        elapsed: Duration,
        /// The last retriable error seen.
        last: Option<Box<Error>>,
    },
    /// The client was shut down.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// A Kafka error with its context.
    pub fn kafka(code: KafkaCode, context: ErrorContext) -> Self {
        Error::Kafka {
            context: Box::new(context),
            code,
            message: None,
        }
    }

    /// A connection error with its context.
    pub fn net(source: NetError, context: ErrorContext) -> Self {
        Error::Net {
            context: Box::new(context),
            source: Arc::new(source),
        }
    }

    /// The Kafka code, for [`Error::Kafka`] (and routing errors explained by one).
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            Error::Unroutable { code, .. } => *code,
            Error::Timeout { last, .. } => last.as_ref().and_then(|e| e.kafka_code()),
            _ => None,
        }
    }

    /// The context, when the variant has one.
    pub fn context(&self) -> Option<&ErrorContext> {
        match self {
            Error::Net { context, .. }
            | Error::Codec { context, .. }
            | Error::Kafka { context, .. }
            | Error::Unroutable { context, .. } => Some(context),
            _ => None,
        }
    }

    /// Whether trying again (after a backoff, refreshing what [`needs_metadata_refresh`] and
    /// [`needs_coordinator_refresh`] say) can succeed. Kafka codes follow
    /// [`KafkaCode::is_retriable`], connection errors [`NetError::is_retriable`].
    ///
    /// [`needs_metadata_refresh`]: Self::needs_metadata_refresh
    /// [`needs_coordinator_refresh`]: Self::needs_coordinator_refresh
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => code.is_retriable(),
            Error::Net { source, .. } => source.is_retriable(),
            // A bootstrap failure: brokers may be restarting.
            Error::Bootstrap { last, .. } => last.as_ref().is_none_or(|e| e.is_retriable()),
            // Metadata may catch up (a leader being elected, a topic being created).
            Error::Unroutable { .. } => true,
            Error::Codec { .. } | Error::Config { .. } | Error::Timeout { .. } | Error::Closed => {
                false
            }
        }
    }

    /// Whether metadata should be refreshed before a retry.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => code.needs_metadata_refresh(),
            // The broker may be gone for good (replaced, moved): a fresh view tells.
            Error::Net { source, .. } => source.is_retriable(),
            Error::Unroutable { .. } => true,
            _ => false,
        }
    }

    /// Whether the cached coordinator (named in the context) should be looked up again.
    pub fn needs_coordinator_refresh(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => code.needs_coordinator_refresh(),
            // A coordinator that cannot be reached may have moved.
            Error::Net { context, source } => {
                context.coordinator.is_some() && source.is_retriable()
            }
            _ => false,
        }
    }

    pub(crate) fn with_context(mut self, f: impl FnOnce(&mut ErrorContext)) -> Self {
        match &mut self {
            Error::Net { context, .. }
            | Error::Codec { context, .. }
            | Error::Kafka { context, .. }
            | Error::Unroutable { context, .. } => f(context),
            _ => {}
        }
        self
    }
}

/// Result alias for the cluster layer.
pub type ClientResult<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_context() {
        let e = Error::kafka(
            KafkaCode::NotLeaderOrFollower,
            ErrorContext::new()
                .api("Produce")
                .broker(2)
                .partition("t", 3),
        );
        assert_eq!(
            e.to_string(),
            "[Produce, broker 2, t-3] NOT_LEADER_OR_FOLLOWER (6): This broker is not the leader \
             (or not a replica) of the partition."
        );
        assert!(e.is_retriable() && e.needs_metadata_refresh());
        assert!(!e.needs_coordinator_refresh());
        let c = Error::kafka(
            KafkaCode::NotCoordinator,
            ErrorContext::new().coordinator(CoordinatorKind::Group, "g"),
        );
        assert!(c.needs_coordinator_refresh() && !c.needs_metadata_refresh());
        assert!(c.to_string().contains("Group coordinator for \"g\""));
    }

    /// Regression: a request the negotiated version cannot carry (DescribeCluster with
    /// `include_fenced_brokers` against Kafka 3.9, which has only v1) used to be retried until
    /// the deadline, as if the network had garbled it.
    #[test]
    fn requests_that_cannot_be_encoded_are_not_retried() {
        let encode = Error::net(
            NetError::Codec(crate::CodecError::Encode {
                api: "DescribeCluster",
                version: 1,
                message: "A field is set that is not available on the selected protocol version"
                    .into(),
            }),
            ErrorContext::new().api("DescribeCluster"),
        );
        assert!(!encode.is_retriable());
        assert!(!encode.needs_metadata_refresh());
        let garbled = Error::net(
            NetError::Codec(crate::CodecError::CorrelationMismatch {
                expected: 1,
                actual: 2,
            }),
            ErrorContext::new(),
        );
        assert!(garbled.is_retriable());
    }

    #[test]
    fn timeouts_keep_the_last_code() {
        let last = Error::kafka(KafkaCode::LeaderNotAvailable, ErrorContext::new());
        let t = Error::Timeout {
            what: "produce",
            elapsed: Duration::from_secs(60),
            last: Some(Box::new(last)),
        };
        assert_eq!(t.kafka_code(), Some(KafkaCode::LeaderNotAvailable));
        assert!(!t.is_retriable());
    }
}
