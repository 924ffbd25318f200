//! The cluster layer: everything above one broker connection and below the user APIs.
//!
//! * [`Client`] ([`cluster`]): bootstrap (every `bootstrap.servers` entry, every address it
//!   resolves to), the metadata cache and its refreshes, routing of requests to partition
//!   leaders, coordinators and the controller, a connection pool per broker and workload
//!   class, coordinator lookup (FindCoordinator, KIP-699 batching), retries bounded by
//!   `default.api.timeout.ms`, and the raw request escape hatch [`Client::send_to`].
//! * [`backoff`]: exponential backoff with jitter (KIP-580).
//! * [`metadata`]: the sans-IO metadata cache (Metadata API, KIP-320 leader epochs).
//! * [`properties`]: Java-style `key=value` settings and [`ClientConfig::from_properties`].
//! * [`route`]: targets, workload classes and routing (sans-IO).
//! * [`error`]: the layer's error type, carrying broker, API, topic, partition and
//!   coordinator context; Kafka codes are [`KafkaCode`](crate::KafkaCode).

pub mod backoff;
pub mod cluster;
pub mod config;
pub mod error;
pub mod metadata;
pub mod pool;
pub mod properties;
pub mod route;

pub use backoff::{Backoff, BackoffConfig};
pub use cluster::Client;
pub use config::{BootstrapServer, ClientConfig};
pub use error::{ClientResult, Error, ErrorContext};
pub use metadata::{
    BrokerInfo, ClusterMetadata, LeaderAndEpoch, MetadataCache, PartitionInfo, TopicInfo,
    TopicSelection,
};
pub use properties::{Properties, CLIENT_KEYS};
pub use route::{ConnectionClass, CoordinatorKind, Target};
