//! The one error type of the `live` binary.

use std::time::Duration;

/// Why a live run could not be done. Printed to stderr; the process then exits non-zero.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The command line is wrong.
    #[error("{0}\n\n{usage}", usage = crate::live::args::USAGE)]
    Usage(String),
    /// An option has a value it cannot take.
    #[error("invalid value {value:?} for {option}: {reason}")]
    BadOption {
        /// The option (`--acks`).
        option: &'static str,
        /// What was given.
        value: String,
        /// What it should be.
        reason: String,
    },
    /// No client of that name.
    #[error("unknown client {name:?}; known clients: {known}")]
    UnknownClient {
        /// The name given.
        name: String,
        /// The names this mode knows.
        known: String,
    },
    /// A peer client asked for in a build without the `peers` feature.
    #[error(
        "client {client:?} is a peer client, compiled only with the `peers` feature: \
         cargo build --release -p benches --features peers --bin live"
    )]
    PeerNotBuilt {
        /// The client.
        client: &'static str,
    },
    /// The client cannot run with these settings at all.
    #[error("client {client:?} cannot run this: {reason}")]
    Unsupported {
        /// The client.
        client: &'static str,
        /// Why.
        reason: String,
    },
    /// Starting or reaching the broker, creating or inspecting the topic failed.
    #[error("broker setup: {0}")]
    Setup(String),
    /// The topic holds fewer records than a consume run needs.
    #[error(
        "topic {topic:?} holds {have} records but --records {need} were asked for; produce them \
         first (`live produce --topic {topic} --records {need} ...`, or let `live compare \
         consume` fill it)"
    )]
    TopicTooSmall {
        /// The topic.
        topic: String,
        /// Records in it (sum over partitions of high watermark minus log start).
        have: u64,
        /// Records asked for.
        need: u64,
    },
    /// The client under test reported an error.
    #[error("client {client:?}: {message}")]
    Client {
        /// The client.
        client: &'static str,
        /// Its error, rendered.
        message: String,
    },
    /// Some records were not acknowledged (the run's JSON is still printed).
    #[error("client {client:?}: {failed} of {total} records failed; first error: {first}")]
    DeliveryFailed {
        /// The client.
        client: &'static str,
        /// Records whose delivery failed.
        failed: u64,
        /// Records sent.
        total: u64,
        /// The first error seen.
        first: String,
    },
    /// No progress for too long.
    #[error(
        "client {client:?} stalled: {done} of {total} records after {waited:?} without progress"
    )]
    Stalled {
        /// The client.
        client: &'static str,
        /// Records done so far.
        done: u64,
        /// Records asked for.
        total: u64,
        /// How long nothing happened.
        waited: Duration,
    },
    /// A child run of `compare` failed.
    #[error("child run `{command}` failed: {reason}")]
    Child {
        /// The command line of the child.
        command: String,
        /// Exit status and the tail of its stderr.
        reason: String,
    },
    /// Reading `/proc/self` or another local IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl LiveError {
    /// A client error from anything printable.
    pub fn client(client: &'static str, error: impl std::fmt::Display) -> Self {
        LiveError::Client {
            client,
            message: error.to_string(),
        }
    }
}
