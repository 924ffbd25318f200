//! Desired state: a typed spec of topics (partitions, replication factor, configs), ACLs and
//! client quotas, loaded from TOML or YAML; [`Admin::plan`] compares it with the live cluster
//! and lists the changes, [`Admin::apply`] carries them out. Applying twice leaves an empty
//! plan.
//!
//! ```toml
//! [topics.orders]
//! partitions = 6
//! replication_factor = 3
//! configs = { "retention.ms" = 86400000, "cleanup.policy" = "delete" }
//!
//! [[acls]]
//! resource_type = "topic"      # pattern_type defaults to literal, host to *, permission to allow
//! resource_name = "orders"
//! principal = "User:alice"
//! operation = "read"
//!
//! [[quotas]]
//! entity = { user = "alice" }  # "<default>" names the default entity
//! values = { producer_byte_rate = 1048576 }
//! ```
//!
//! Only what the spec names is managed: configs not in the spec are left alone, and nothing
//! is deleted unless [`PlanOptions::allow_deletions`] is set (then topics, ACLs and quota
//! keys missing from the spec go, within [`PlanOptions::scope_prefix`] when one is given).
//! Changes Kafka cannot make are reported as plan errors, and [`Admin::apply`] refuses a
//! plan that has any: fewer partitions, or a different replication factor (that is a
//! reassignment: see [`crate::reassign`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use crate::acls::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType, ResourceType,
};
use crate::admin::Admin;
use crate::configs::{AlterConfigOp, ConfigResource, ConfigSource};
use crate::error::{AdminError, Result};
use crate::quotas::{QuotaEntity, QuotaOp};
use crate::topics::{NewPartitions, NewTopic};

/// A config value as written in a spec: a string, number or boolean.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum ConfigValue {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Text(s) => f.write_str(s),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A topic in the spec.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Partitions.
    pub partitions: i32,
    /// Replication factor (`None`: the broker default when created, not checked after).
    #[serde(default)]
    pub replication_factor: Option<i16>,
    /// Topic configs.
    #[serde(default)]
    pub configs: BTreeMap<String, ConfigValue>,
}

/// An ACL in the spec (Kafka's names, case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AclSpec {
    /// `topic`, `group`, `cluster`, `transactional_id`, `delegation_token`, `user`.
    pub resource_type: String,
    /// Resource name.
    pub resource_name: String,
    /// `literal` (default) or `prefixed`.
    #[serde(default)]
    pub pattern_type: Option<String>,
    /// `User:alice`.
    pub principal: String,
    /// Host, default `*`.
    #[serde(default)]
    pub host: Option<String>,
    /// `read`, `write`, `all`...
    pub operation: String,
    /// `allow` (default) or `deny`.
    #[serde(default)]
    pub permission: Option<String>,
}

impl AclSpec {
    fn binding(&self) -> std::result::Result<AclBinding, String> {
        let bad = |what: &str, v: &str| format!("ACL for {}: unknown {what} {v:?}", self.principal);
        let resource_type = ResourceType::parse(&self.resource_type)
            .filter(|t| !matches!(t, ResourceType::Any | ResourceType::Unknown))
            .ok_or_else(|| bad("resource_type", &self.resource_type))?;
        let pt = self.pattern_type.as_deref().unwrap_or("literal");
        let pattern_type = PatternType::parse(pt)
            .filter(|p| matches!(p, PatternType::Literal | PatternType::Prefixed))
            .ok_or_else(|| bad("pattern_type", pt))?;
        let operation = AclOperation::parse(&self.operation)
            .filter(|o| !matches!(o, AclOperation::Any | AclOperation::Unknown))
            .ok_or_else(|| bad("operation", &self.operation))?;
        let perm = self.permission.as_deref().unwrap_or("allow");
        let permission = AclPermission::parse(perm)
            .filter(|p| matches!(p, AclPermission::Allow | AclPermission::Deny))
            .ok_or_else(|| bad("permission", perm))?;
        if !self.principal.contains(':') {
            return Err(format!(
                "ACL principal {:?} is not of the form Type:name (User:alice)",
                self.principal
            ));
        }
        Ok(AclBinding {
            resource_type,
            resource_name: self.resource_name.clone(),
            pattern_type,
            principal: self.principal.clone(),
            host: self.host.clone().unwrap_or_else(|| "*".into()),
            operation,
            permission,
        })
    }
}

/// A client quota in the spec.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    /// Entity type (`user`, `client-id`, `ip`) to name; `<default>` for the default entity.
    pub entity: BTreeMap<String, String>,
    /// Quota keys to values.
    pub values: BTreeMap<String, f64>,
}

impl QuotaSpec {
    fn entity(&self) -> QuotaEntity {
        QuotaEntity(
            self.entity
                .iter()
                .map(|(t, n)| (t.clone(), (n != "<default>").then(|| n.clone())))
                .collect(),
        )
    }
}

/// The desired state of (part of) a cluster.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    /// Topics by name.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicSpec>,
    /// ACLs.
    #[serde(default)]
    pub acls: Vec<AclSpec>,
    /// Client quotas.
    #[serde(default)]
    pub quotas: Vec<QuotaSpec>,
}

impl DesiredState {
    /// From TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| AdminError::Plan {
            reason: format!("invalid desired-state TOML: {e}"),
        })
    }

    /// From YAML text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| AdminError::Plan {
            reason: format!("invalid desired-state YAML: {e}"),
        })
    }

    /// From a `.toml`, `.yaml` or `.yml` file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| AdminError::Plan {
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml(&text),
            Some("yaml" | "yml") => Self::from_yaml(&text),
            _ => Err(AdminError::Plan {
                reason: format!("{}: expected a .toml, .yaml or .yml file", path.display()),
            }),
        }
    }
}

/// What [`Admin::plan`] may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Delete topics, ACLs and quota keys that the spec does not list.
    pub allow_deletions: bool,
    /// Manage only topics, ACL resources and quota entity names starting with this.
    pub scope_prefix: Option<String>,
}

impl PlanOptions {
    fn in_scope(&self, name: &str) -> bool {
        self.scope_prefix
            .as_deref()
            .is_none_or(|p| name.starts_with(p))
    }
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub enum Change {
    /// Create a topic.
    CreateTopic {
        /// Name.
        name: String,
        /// Partitions.
        partitions: i32,
        /// Replication factor (`None`: broker default).
        replication_factor: Option<i16>,
        /// Configs.
        configs: BTreeMap<String, String>,
    },
    /// Add partitions.
    AddPartitions {
        /// Topic.
        name: String,
        /// Partitions now.
        from: i32,
        /// Partitions after.
        to: i32,
    },
    /// Set and delete topic configs.
    AlterTopicConfigs {
        /// Topic.
        name: String,
        /// Keys to set (key → (current dynamic value, new value)).
        set: BTreeMap<String, (Option<String>, String)>,
        /// Keys to delete.
        delete: Vec<String>,
    },
    /// Delete a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Create an ACL.
    CreateAcl(AclBinding),
    /// Delete an ACL.
    DeleteAcl(AclBinding),
    /// Set and remove quota keys of an entity.
    AlterQuota {
        /// Entity.
        entity: QuotaEntity,
        /// Keys to set.
        set: BTreeMap<String, f64>,
        /// Keys to remove.
        remove: Vec<String>,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            } => {
                write!(
                    f,
                    "+ topic {name}: {partitions} partition(s), replication factor {}",
                    replication_factor.map_or("default".into(), |r| r.to_string())
                )?;
                for (k, v) in configs {
                    write!(f, ", {k}={v}")?;
                }
                Ok(())
            }
            Change::AddPartitions { name, from, to } => {
                write!(f, "~ topic {name}: partitions {from} -> {to}")
            }
            Change::AlterTopicConfigs { name, set, delete } => {
                write!(f, "~ topic {name} configs:")?;
                for (k, (old, new)) in set {
                    write!(
                        f,
                        " {k}: {} -> {new};",
                        old.as_deref().unwrap_or("(default)")
                    )?;
                }
                for k in delete {
                    write!(f, " -{k};")?;
                }
                Ok(())
            }
            Change::DeleteTopic { name } => write!(f, "- topic {name}"),
            Change::CreateAcl(a) => write!(f, "+ acl {a}"),
            Change::DeleteAcl(a) => write!(f, "- acl {a}"),
            Change::AlterQuota {
                entity,
                set,
                remove,
            } => {
                write!(f, "~ quota {entity}:")?;
                for (k, v) in set {
                    write!(f, " {k}={v};")?;
                }
                for k in remove {
                    write!(f, " -{k};")?;
                }
                Ok(())
            }
        }
    }
}

/// The changes that bring the cluster to the desired state, and what cannot be done.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Plan {
    /// Changes, in the order they are applied.
    pub changes: Vec<Change>,
    /// Impossible or invalid requests (the plan cannot be applied while there are any).
    pub errors: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do and nothing wrong.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.errors.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes: the cluster matches the desired state");
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        for e in &self.errors {
            writeln!(f, "! {e}")?;
        }
        writeln!(
            f,
            "{} change(s), {} error(s)",
            self.changes.len(),
            self.errors.len()
        )
    }
}

impl Admin {
    /// Compares `spec` with the live cluster.
    pub async fn plan(&self, spec: &DesiredState, opts: &PlanOptions) -> Result<Plan> {
        let mut plan = Plan::default();
        // Topics.
        let live: BTreeSet<String> = self
            .list_topics(false)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let existing: Vec<&str> = spec
            .topics
            .keys()
            .filter(|n| live.contains(*n))
            .map(String::as_str)
            .collect();
        let described = if existing.is_empty() {
            BTreeMap::new()
        } else {
            self.describe_topics(&existing).await?.into_result()?
        };
        let resources: Vec<ConfigResource> = existing
            .iter()
            .map(|n| ConfigResource::Topic((*n).to_owned()))
            .collect();
        let configs = if resources.is_empty() {
            BTreeMap::new()
        } else {
            self.describe_configs(&resources).await?.into_result()?
        };
        for (name, t) in &spec.topics {
            if t.partitions < 1 {
                plan.errors.push(format!(
                    "topic {name}: partitions must be at least 1, not {}",
                    t.partitions
                ));
                continue;
            }
            if matches!(t.replication_factor, Some(r) if r < 1) {
                plan.errors.push(format!(
                    "topic {name}: replication_factor must be at least 1"
                ));
                continue;
            }
            let want: BTreeMap<String, String> = t
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            let Some(d) = described.get(name) else {
                plan.changes.push(Change::CreateTopic {
                    name: name.clone(),
                    partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    configs: want,
                });
                continue;
            };
            let have = d.partitions.len() as i32;
            if t.partitions < have {
                plan.errors.push(format!("topic {name}: has {have} partitions, the spec wants {}; Kafka cannot remove partitions", t.partitions));
            } else if t.partitions > have {
                plan.changes.push(Change::AddPartitions {
                    name: name.clone(),
                    from: have,
                    to: t.partitions,
                });
            }
            if let (Some(rf), Some(p)) = (t.replication_factor, d.partitions.first()) {
                if p.replicas.len() != rf as usize {
                    plan.errors.push(format!(
                        "topic {name}: replication factor is {}, the spec wants {rf}; that is a reassignment (kafka_admin::reassign::plan_replication_factor)",
                        p.replicas.len()
                    ));
                }
            }
            let dynamic: BTreeMap<String, Option<String>> = configs
                .get(&ConfigResource::Topic(name.clone()))
                .into_iter()
                .flatten()
                .filter(|e| e.source == ConfigSource::DynamicTopic)
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect();
            let mut set = BTreeMap::new();
            for (k, v) in &want {
                let cur = dynamic.get(k).cloned().flatten();
                if cur.as_deref() != Some(v.as_str()) {
                    set.insert(k.clone(), (cur, v.clone()));
                }
            }
            let delete: Vec<String> = if opts.allow_deletions {
                dynamic
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            if !set.is_empty() || !delete.is_empty() {
                plan.changes.push(Change::AlterTopicConfigs {
                    name: name.clone(),
                    set,
                    delete,
                });
            }
        }
        // ACLs.
        let mut want_acls = BTreeSet::new();
        for a in &spec.acls {
            match a.binding() {
                Ok(b) => {
                    want_acls.insert(b);
                }
                Err(e) => plan.errors.push(e),
            }
        }
        let live_acls: BTreeSet<AclBinding> = self
            .describe_acls(&AclBindingFilter::any())
            .await?
            .into_iter()
            .filter(|a| opts.in_scope(&a.resource_name))
            .collect();
        for a in want_acls.difference(&live_acls) {
            plan.changes.push(Change::CreateAcl(a.clone()));
        }
        // Quotas.
        let live_quotas = self.describe_client_quotas(&[], false).await?;
        let mut wanted_entities = BTreeSet::new();
        for q in &spec.quotas {
            let entity = q.entity();
            if entity.0.is_empty() {
                plan.errors
                    .push("a quota entity needs at least one of user, client-id, ip".into());
                continue;
            }
            wanted_entities.insert(entity.clone());
            let cur = live_quotas.get(&entity).cloned().unwrap_or_default();
            let set: BTreeMap<String, f64> = q
                .values
                .iter()
                .filter(|(k, v)| cur.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            let remove: Vec<String> = if opts.allow_deletions {
                cur.keys()
                    .filter(|k| !q.values.contains_key(*k))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            if !set.is_empty() || !remove.is_empty() {
                plan.changes.push(Change::AlterQuota {
                    entity,
                    set,
                    remove,
                });
            }
        }
        if opts.allow_deletions {
            for (entity, values) in &live_quotas {
                let in_scope = entity.0.values().flatten().all(|n| opts.in_scope(n));
                if in_scope && !wanted_entities.contains(entity) {
                    plan.changes.push(Change::AlterQuota {
                        entity: entity.clone(),
                        set: BTreeMap::new(),
                        remove: values.keys().cloned().collect(),
                    });
                }
            }
            for a in live_acls.difference(&want_acls) {
                plan.changes.push(Change::DeleteAcl(a.clone()));
            }
            for name in &live {
                if opts.in_scope(name) && !name.starts_with("__") && !spec.topics.contains_key(name)
                {
                    plan.changes
                        .push(Change::DeleteTopic { name: name.clone() });
                }
            }
        }
        Ok(plan)
    }

    /// Carries a plan out (refused when it has errors). Creates first, deletes last.
    pub async fn apply(&self, plan: &Plan) -> Result<()> {
        if !plan.errors.is_empty() {
            return Err(AdminError::Plan {
                reason: format!(
                    "the plan has {} error(s): {}",
                    plan.errors.len(),
                    plan.errors.join("; ")
                ),
            });
        }
        let mut create = Vec::new();
        let mut grow = BTreeMap::new();
        let mut alter = BTreeMap::new();
        let mut acls = Vec::new();
        let mut quotas = BTreeMap::new();
        let mut drop_acls = Vec::new();
        let mut drop_topics = Vec::new();
        for c in &plan.changes {
            match c {
                Change::CreateTopic {
                    name,
                    partitions,
                    replication_factor,
                    configs,
                } => {
                    let mut t = NewTopic::new(name, *partitions, 1);
                    t.replication_factor = *replication_factor;
                    t.configs = configs.clone();
                    create.push(t);
                }
                Change::AddPartitions { name, to, .. } => {
                    grow.insert(name.clone(), NewPartitions::increase_to(*to));
                }
                Change::AlterTopicConfigs { name, set, delete } => {
                    let ops = set
                        .iter()
                        .map(|(k, (_, v))| AlterConfigOp::set(k, v))
                        .chain(delete.iter().map(AlterConfigOp::delete))
                        .collect();
                    alter.insert(ConfigResource::Topic(name.clone()), ops);
                }
                Change::DeleteTopic { name } => drop_topics.push(name.as_str()),
                Change::CreateAcl(a) => acls.push(a.clone()),
                Change::DeleteAcl(a) => drop_acls.push(a.to_filter()),
                Change::AlterQuota {
                    entity,
                    set,
                    remove,
                } => {
                    let ops = set
                        .iter()
                        .map(|(k, v)| QuotaOp::Set(k.clone(), *v))
                        .chain(remove.iter().map(|k| QuotaOp::Remove(k.clone())))
                        .collect();
                    quotas.insert(entity.clone(), ops);
                }
            }
        }
        if !create.is_empty() {
            self.create_topics(&create, false).await?.into_result()?;
        }
        if !grow.is_empty() {
            self.create_partitions(&grow, false).await?.into_result()?;
        }
        if !alter.is_empty() {
            self.incremental_alter_configs(&alter, false)
                .await?
                .into_result()?;
        }
        if !acls.is_empty() {
            self.create_acls(&acls).await?.into_result()?;
        }
        if !quotas.is_empty() {
            self.alter_client_quotas(&quotas, false)
                .await?
                .into_result()?;
        }
        if !drop_acls.is_empty() {
            self.delete_acls(&drop_acls).await?.into_result()?;
        }
        if !drop_topics.is_empty() {
            self.delete_topics(&drop_topics).await?.into_result()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[topics.orders]
partitions = 6
replication_factor = 3
configs = { "retention.ms" = 86400000, "cleanup.policy" = "delete" }

[[acls]]
resource_type = "topic"
resource_name = "orders"
principal = "User:alice"
operation = "read"

[[quotas]]
entity = { user = "alice" }
values = { producer_byte_rate = 1048576 }
"#;

    const YAML: &str = r#"
topics:
  orders:
    partitions: 6
    replication_factor: 3
    configs:
      retention.ms: 86400000
      cleanup.policy: delete
acls:
  - resource_type: topic
    resource_name: orders
    principal: User:alice
    operation: read
quotas:
  - entity: { user: alice }
    values: { producer_byte_rate: 1048576 }
"#;

    #[test]
    fn toml_and_yaml_give_the_same_spec() {
        let t = DesiredState::from_toml(TOML).unwrap();
        let y = DesiredState::from_yaml(YAML).unwrap();
        assert_eq!(t, y);
        assert_eq!(
            t.topics["orders"].configs["retention.ms"].to_string(),
            "86400000"
        );
        let b = t.acls[0].binding().unwrap();
        assert_eq!(
            (b.resource_type, b.operation, b.permission, b.host.as_str()),
            (
                ResourceType::Topic,
                AclOperation::Read,
                AclPermission::Allow,
                "*"
            )
        );
        assert_eq!(t.quotas[0].entity(), QuotaEntity::user("alice"));
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        let e = DesiredState::from_toml("[topics.x]\npartitons = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("partitons"), "{e}");
        let e = DesiredState::from_yaml("topics: [1, 2]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("YAML"), "{e}");
        let spec = AclSpec {
            resource_type: "topik".into(),
            resource_name: "x".into(),
            pattern_type: None,
            principal: "User:a".into(),
            host: None,
            operation: "read".into(),
            permission: None,
        };
        assert!(spec.binding().unwrap_err().contains("topik"));
    }
}
