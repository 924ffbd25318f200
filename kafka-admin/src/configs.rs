//! Configs: describe (with sources and synonyms) and incremental alter (set, delete, append,
//! subtract; validate-only) of topics, brokers and broker loggers. A broker's own resources
//! (and its loggers) go to that broker; the rest to any broker.

use std::collections::BTreeMap;
use std::fmt;

use kafka_core::client::Target;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};

use crate::admin::{sb, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result};

/// Something that has configs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ConfigResource {
    /// A topic.
    Topic(String),
    /// One broker's configs.
    Broker(i32),
    /// The cluster-wide broker defaults (resource name `""`).
    BrokerDefault,
    /// One broker's log4j loggers.
    BrokerLogger(i32),
    /// A consumer or share group (KIP-848 group configs, Kafka 3.8+).
    Group(String),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(b) => (4, b.to_string()),
            ConfigResource::BrokerDefault => (4, String::new()),
            ConfigResource::BrokerLogger(b) => (8, b.to_string()),
            ConfigResource::Group(g) => (32, g.clone()),
        }
    }

    fn target(&self) -> Target {
        match self {
            ConfigResource::Broker(b) | ConfigResource::BrokerLogger(b) => Target::Broker(*b),
            _ => Target::AnyBroker,
        }
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(b) => write!(f, "broker {b}"),
            ConfigResource::BrokerDefault => write!(f, "broker defaults"),
            ConfigResource::BrokerLogger(b) => write!(f, "loggers of broker {b}"),
            ConfigResource::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// Where a config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum ConfigSource {
    /// Not known.
    Unknown,
    /// Set on the topic.
    DynamicTopic,
    /// Set on this broker dynamically.
    DynamicBroker,
    /// Set dynamically as the default of every broker.
    DynamicDefaultBroker,
    /// From `server.properties`.
    StaticBroker,
    /// Kafka's default.
    Default,
    /// A dynamic broker logger level.
    DynamicBrokerLogger,
    /// Client metrics subscription.
    ClientMetrics,
    /// Set on the group.
    DynamicGroup,
}

impl ConfigSource {
    fn from_code(c: i8) -> Self {
        match c {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::DynamicGroup,
            _ => ConfigSource::Unknown,
        }
    }
}

/// A value another source gives the same config (in precedence order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The config name (may differ from the entry's: `log.retention.ms` for `retention.ms`).
    pub name: String,
    /// The value (`None` when sensitive).
    pub value: Option<String>,
    /// Where from.
    pub source: ConfigSource,
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    /// Name.
    pub name: String,
    /// Value (`None` when sensitive or unset).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed dynamically.
    pub read_only: bool,
    /// Whether it is a secret.
    pub sensitive: bool,
    /// Other sources' values, highest precedence first.
    pub synonyms: Vec<ConfigSynonym>,
    /// Documentation (v3+, when asked for).
    pub documentation: Option<String>,
}

impl ConfigEntry {
    /// Whether the value is the default (not set on the resource nor the broker).
    pub fn is_default(&self) -> bool {
        matches!(
            self.source,
            ConfigSource::Default | ConfigSource::StaticBroker
        )
    }
}

/// One change of an incremental alter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlterConfigOp {
    /// Set `name` to a value.
    Set(String, String),
    /// Remove `name` (back to the default).
    Delete(String),
    /// Append values to a list config.
    Append(String, String),
    /// Remove values from a list config.
    Subtract(String, String),
}

impl AlterConfigOp {
    /// `Set`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        AlterConfigOp::Set(name.into(), value.into())
    }

    /// `Delete`.
    pub fn delete(name: impl Into<String>) -> Self {
        AlterConfigOp::Delete(name.into())
    }

    fn wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            AlterConfigOp::Set(n, v) => (n, 0, Some(v)),
            AlterConfigOp::Delete(n) => (n, 1, None),
            AlterConfigOp::Append(n, v) => (n, 2, Some(v)),
            AlterConfigOp::Subtract(n, v) => (n, 3, Some(v)),
        };
        AlterableConfig::default()
            .with_name(sb(name))
            .with_config_operation(op)
            .with_value(value.map(|v| sb(v)))
    }
}

impl Admin {
    /// Describes the configs of `resources` (all keys), with synonyms.
    pub async fn describe_configs(
        &self,
        resources: &[ConfigResource],
    ) -> Result<ItemResults<ConfigResource, Vec<ConfigEntry>>> {
        let mut out = ItemResults::new("describe configs");
        let mut by_target: BTreeMap<String, (Target, Vec<ConfigResource>)> = BTreeMap::new();
        for r in resources {
            let t = r.target();
            by_target
                .entry(format!("{t:?}"))
                .or_insert_with(|| (t, Vec::new()))
                .1
                .push(r.clone());
        }
        for (_, (target, rs)) in by_target {
            let wire: Vec<DescribeConfigsResource> = rs
                .iter()
                .map(|r| {
                    let (ty, name) = r.wire();
                    DescribeConfigsResource::default()
                        .with_resource_type(ty)
                        .with_resource_name(sb(&name))
                        .with_configuration_keys(None)
                })
                .collect();
            let sent = self
                .call(
                    "describe configs",
                    target,
                    |_| {
                        Ok(DescribeConfigsRequest::default()
                            .with_resources(wire.clone())
                            .with_include_synonyms(true))
                    },
                    |_| (0, None),
                )
                .await?;
            for (res, r) in rs.iter().zip(sent.response.results.iter()) {
                if let Some(e) = ItemError::from_code(r.error_code, r.error_message.as_deref()) {
                    out.insert(res.clone(), Err(e));
                    continue;
                }
                let mut entries: Vec<ConfigEntry> = r
                    .configs
                    .iter()
                    .map(|c| ConfigEntry {
                        name: c.name.to_string(),
                        value: c.value.as_ref().map(|v| v.to_string()),
                        source: ConfigSource::from_code(c.config_source),
                        read_only: c.read_only,
                        sensitive: c.is_sensitive,
                        synonyms: c
                            .synonyms
                            .iter()
                            .map(|s| ConfigSynonym {
                                name: s.name.to_string(),
                                value: s.value.as_ref().map(|v| v.to_string()),
                                source: ConfigSource::from_code(s.source),
                            })
                            .collect(),
                        documentation: c.documentation.as_ref().map(|d| d.to_string()),
                    })
                    .collect();
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                out.insert(res.clone(), Ok(entries));
            }
            for r in rs {
                out.insert_missing(r);
            }
        }
        Ok(out)
    }

    /// One config of one resource.
    pub async fn describe_config(
        &self,
        resource: &ConfigResource,
        name: &str,
    ) -> Result<Option<ConfigEntry>> {
        let mut all = self
            .describe_configs(std::slice::from_ref(resource))
            .await?
            .into_result()?;
        Ok(all
            .remove(resource)
            .and_then(|es| es.into_iter().find(|e| e.name == name)))
    }

    /// Incrementally alters configs (`validate_only`: check only). One outcome per
    /// resource; an invalid value fails that resource with `INVALID_CONFIG` and the
    /// broker's explanation.
    pub async fn incremental_alter_configs(
        &self,
        changes: &BTreeMap<ConfigResource, Vec<AlterConfigOp>>,
        validate_only: bool,
    ) -> Result<ItemResults<ConfigResource, ()>> {
        if changes.values().any(Vec::is_empty) {
            return Err(AdminError::invalid("a config resource with no change"));
        }
        let mut out = ItemResults::new("alter configs");
        let mut by_target: BTreeMap<String, (Target, Vec<ConfigResource>)> = BTreeMap::new();
        for r in changes.keys() {
            let t = r.target();
            by_target
                .entry(format!("{t:?}"))
                .or_insert_with(|| (t, Vec::new()))
                .1
                .push(r.clone());
        }
        for (_, (target, rs)) in by_target {
            let wire: Vec<AlterConfigsResource> = rs
                .iter()
                .map(|r| {
                    let (ty, name) = r.wire();
                    AlterConfigsResource::default()
                        .with_resource_type(ty)
                        .with_resource_name(sb(&name))
                        .with_configs(changes[r].iter().map(AlterConfigOp::wire).collect())
                })
                .collect();
            let sent = self
                .call(
                    "alter configs",
                    target,
                    |_| {
                        Ok(IncrementalAlterConfigsRequest::default()
                            .with_resources(wire.clone())
                            .with_validate_only(validate_only))
                    },
                    |_| (0, None),
                )
                .await?;
            for (res, r) in rs.iter().zip(sent.response.responses.iter()) {
                out.insert(
                    res.clone(),
                    ItemError::from_code(r.error_code, r.error_message.as_deref())
                        .map_or(Ok(()), Err),
                );
            }
            for r in rs {
                out.insert_missing(r);
            }
        }
        Ok(out)
    }
}
