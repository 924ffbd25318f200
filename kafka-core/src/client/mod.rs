//! The cluster layer: everything above one broker connection and below the user APIs.
//!
//! * [`backoff`]: exponential backoff with jitter (KIP-580).
//! * [`metadata`]: the sans-IO metadata cache (Metadata API, KIP-320 leader epochs).

pub mod backoff;
pub mod metadata;

pub use backoff::{Backoff, BackoffConfig};
pub use metadata::{
    BrokerInfo, ClusterMetadata, LeaderAndEpoch, MetadataCache, PartitionInfo, TopicInfo,
    TopicSelection,
};
