//! `kafka-admin`: the complete Kafka admin API on [`kafka_core::client::Client`], typed, with
//! per-item errors, plus the operations helpers a platform engineer reaches for every day.
//!
//! * [`Admin`]: topics, configs, ACLs, client quotas, SCRAM credentials, delegation tokens,
//!   consumer groups and their offsets, list offsets, delete records, cluster description,
//!   features, the KRaft quorum, log dirs, partition reassignments, leader elections,
//!   producers and transactions.
//! * Helpers: consumer lag ([`lag`]), the cluster health report ([`health`]), offset reset
//!   with a dry run ([`reset`]), rack-aware reassignment planning ([`reassign`]) and the
//!   desired-state spec with plan/apply ([`desired`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod acls;
mod admin;
pub mod cluster;
pub mod config;
pub mod configs;
pub mod desired;
pub mod error;
pub mod groups;
pub mod health;
pub mod lag;
pub mod offsets;
pub mod quotas;
pub mod reassign;
pub mod reset;
pub mod scram;
pub mod tokens;
pub mod topics;
pub mod txn;

pub use acls::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType, ResourceType,
};
pub use admin::Admin;
pub use config::{AdminConfig, AdminConfigBuilder};
pub use configs::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource};
pub use error::{AdminError, ItemError, ItemResults, Result, TopicPartition};
pub use topics::{NewPartitions, NewTopic, TopicDescription};
