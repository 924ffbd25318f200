//! Client quotas (KIP-546): describe with filters, alter (set, remove; validate-only).

use std::collections::BTreeMap;
use std::fmt;

use kafka_core::client::Target;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};

use crate::admin::{opt_msg, sb, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result};

/// A quota entity: entity types (`user`, `client-id`, `ip`) to names; `None` is the
/// default entity of that type.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct QuotaEntity(pub BTreeMap<String, Option<String>>);

impl QuotaEntity {
    /// The entity of one user.
    pub fn user(name: impl Into<String>) -> Self {
        QuotaEntity(BTreeMap::from([("user".to_owned(), Some(name.into()))]))
    }

    /// The entity of one client id.
    pub fn client_id(id: impl Into<String>) -> Self {
        QuotaEntity(BTreeMap::from([("client-id".to_owned(), Some(id.into()))]))
    }

    /// Adds a component.
    pub fn with(mut self, entity_type: impl Into<String>, name: Option<String>) -> Self {
        self.0.insert(entity_type.into(), name);
        self
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (t, n) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{t}={}", n.as_deref().unwrap_or("<default>"))?;
        }
        Ok(())
    }
}

/// One component of a quota filter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaFilter {
    /// Entities of this type with exactly this name.
    Exact(String, String),
    /// The default entity of this type.
    Default(String),
    /// Any entity of this type (named or default).
    Any(String),
}

/// A change to one quota key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QuotaOp {
    /// Set `key` (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`...).
    Set(String, f64),
    /// Remove `key`.
    Remove(String),
}

impl Admin {
    /// Quotas matching every component of `filter` (`strict`: only entities with no other
    /// component).
    pub async fn describe_client_quotas(
        &self,
        filter: &[QuotaFilter],
        strict: bool,
    ) -> Result<BTreeMap<QuotaEntity, BTreeMap<String, f64>>> {
        let comps: Vec<ComponentData> = filter
            .iter()
            .map(|c| match c {
                QuotaFilter::Exact(t, n) => ComponentData::default()
                    .with_entity_type(sb(t))
                    .with_match_type(0)
                    .with_match(Some(sb(n))),
                QuotaFilter::Default(t) => ComponentData::default()
                    .with_entity_type(sb(t))
                    .with_match_type(1),
                QuotaFilter::Any(t) => ComponentData::default()
                    .with_entity_type(sb(t))
                    .with_match_type(2),
            })
            .collect();
        let sent = self
            .call(
                "describe client quotas",
                Target::AnyBroker,
                |_| {
                    Ok(DescribeClientQuotasRequest::default()
                        .with_components(comps.clone())
                        .with_strict(strict))
                },
                |r: &DescribeClientQuotasResponse| (r.error_code, opt_msg(&r.error_message)),
            )
            .await?;
        let mut out = BTreeMap::new();
        for e in sent.response.entries.iter().flatten() {
            let entity = QuotaEntity(
                e.entity
                    .iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect(),
            );
            let values = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            out.insert(entity, values);
        }
        Ok(out)
    }

    /// Alters quotas (`validate_only`: check only). One outcome per entity.
    pub async fn alter_client_quotas(
        &self,
        changes: &BTreeMap<QuotaEntity, Vec<QuotaOp>>,
        validate_only: bool,
    ) -> Result<ItemResults<QuotaEntity, ()>> {
        if changes.keys().any(|e| e.0.is_empty()) {
            return Err(AdminError::invalid(
                "a quota entity needs at least one component",
            ));
        }
        let entries: Vec<EntryData> = changes
            .iter()
            .map(|(entity, ops)| {
                EntryData::default()
                    .with_entity(
                        entity
                            .0
                            .iter()
                            .map(|(t, n)| {
                                EntityData::default()
                                    .with_entity_type(sb(t))
                                    .with_entity_name(n.as_deref().map(sb))
                            })
                            .collect(),
                    )
                    .with_ops(
                        ops.iter()
                            .map(|op| match op {
                                QuotaOp::Set(k, v) => {
                                    OpData::default().with_key(sb(k)).with_value(*v)
                                }
                                QuotaOp::Remove(k) => {
                                    OpData::default().with_key(sb(k)).with_remove(true)
                                }
                            })
                            .collect(),
                    )
            })
            .collect();
        let sent = self
            .call(
                "alter client quotas",
                Target::AnyBroker,
                |_| {
                    Ok(AlterClientQuotasRequest::default()
                        .with_entries(entries.clone())
                        .with_validate_only(validate_only))
                },
                |_| (0, None),
            )
            .await?;
        let mut out = ItemResults::new("alter client quotas");
        for e in &sent.response.entries {
            let entity = QuotaEntity(
                e.entity
                    .iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect(),
            );
            out.insert(
                entity,
                ItemError::from_code(e.error_code, e.error_message.as_deref()).map_or(Ok(()), Err),
            );
        }
        for e in changes.keys() {
            out.insert_missing(e.clone());
        }
        Ok(out)
    }
}
