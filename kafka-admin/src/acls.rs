//! ACLs: create, describe and delete with filters (CreateAcls, DescribeAcls, DeleteAcls).
//! Sent to any broker; KRaft brokers forward writes to the controller.

use std::collections::BTreeSet;
use std::fmt;

use kafka_core::client::Target;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use crate::admin::{opt_msg, sb, Admin};
use crate::error::{ItemError, ItemResults, Result};

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $code:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $v,)*
        }
        impl $name {
            /// The wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$v => $code,)* }
            }
            /// From the wire code (`Unknown` for codes this client does not know).
            pub fn from_code(code: i8) -> Self {
                match code { $($code => $name::$v,)* _ => $name::Unknown }
            }
            /// Kafka's name (`TOPIC`, `LITERAL`, `READ`...).
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $text,)* }
            }
            /// From Kafka's name, case-insensitively.
            pub fn parse(s: &str) -> Option<Self> {
                let u = s.trim().to_ascii_uppercase().replace('-', "_");
                match u.as_str() { $($text => Some($name::$v),)* _ => None }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// What an ACL protects.
    ResourceType {
        /// Not known to this client.
        Unknown = 0, "UNKNOWN";
        /// Any type (filters only).
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster.
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user principal.
        User = 7, "USER";
    }
);

wire_enum!(
    /// How an ACL's resource name matches.
    PatternType {
        /// Not known to this client.
        Unknown = 0, "UNKNOWN";
        /// Any pattern type (filters only).
        Any = 1, "ANY";
        /// Every binding that would apply to the name (filters only).
        Match = 2, "MATCH";
        /// The exact name (or `*`).
        Literal = 3, "LITERAL";
        /// Every name with this prefix.
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// An operation an ACL allows or denies.
    AclOperation {
        /// Not known to this client.
        Unknown = 0, "UNKNOWN";
        /// Any operation (filters only).
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read.
        Read = 3, "READ";
        /// Write.
        Write = 4, "WRITE";
        /// Create.
        Create = 5, "CREATE";
        /// Delete.
        Delete = 6, "DELETE";
        /// Alter.
        Alter = 7, "ALTER";
        /// Describe.
        Describe = 8, "DESCRIBE";
        /// Cluster action (inter-broker).
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Describe configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Alter configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent write.
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// Two-phase commit (KIP-939).
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

wire_enum!(
    /// Allow or deny.
    AclPermission {
        /// Not known to this client.
        Unknown = 0, "UNKNOWN";
        /// Either (filters only).
        Any = 1, "ANY";
        /// Deny.
        Deny = 2, "DENY";
        /// Allow.
        Allow = 3, "ALLOW";
    }
);

/// The operations in an `authorized_operations` bit field (`None` for `i32::MIN`: not
/// asked for, or not known).
pub fn authorized_operations(bits: i32) -> Option<BTreeSet<AclOperation>> {
    if bits == i32::MIN {
        return None;
    }
    Some(
        (0..31)
            .filter(|b| bits & (1 << b) != 0)
            .map(|b| AclOperation::from_code(b as i8))
            .filter(|op| *op != AclOperation::Unknown)
            .collect(),
    )
}

/// One ACL: a resource pattern and an access control entry.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct AclBinding {
    /// What the ACL protects.
    pub resource_type: ResourceType,
    /// The resource name (`*` for every name with [`PatternType::Literal`]).
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// `User:alice`.
    pub principal: String,
    /// The host (`*` for any).
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
}

impl AclBinding {
    /// An ALLOW ACL of `principal` for `operation` on a literal resource, from any host.
    pub fn allow(
        resource_type: ResourceType,
        resource_name: impl Into<String>,
        principal: impl Into<String>,
        operation: AclOperation,
    ) -> Self {
        AclBinding {
            resource_type,
            resource_name: resource_name.into(),
            pattern_type: PatternType::Literal,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission: AclPermission::Allow,
        }
    }

    /// The filter matching exactly this binding.
    pub fn to_filter(&self) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: self.resource_type,
            resource_name: Some(self.resource_name.clone()),
            pattern_type: self.pattern_type,
            principal: Some(self.principal.clone()),
            host: Some(self.host.clone()),
            operation: self.operation,
            permission: self.permission,
        }
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} on {}:{}:{} from {}",
            self.permission,
            self.principal,
            self.operation,
            self.resource_type,
            self.pattern_type,
            self.resource_name,
            self.host
        )
    }
}

/// A filter over ACLs; `None` fields and `Any` match everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBindingFilter {
    /// Resource type.
    pub resource_type: ResourceType,
    /// Resource name.
    pub resource_name: Option<String>,
    /// Pattern type (`Match` matches every pattern that applies to the name).
    pub pattern_type: PatternType,
    /// Principal.
    pub principal: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Operation.
    pub operation: AclOperation,
    /// Permission.
    pub permission: AclPermission,
}

impl AclBindingFilter {
    /// Matches every ACL.
    pub fn any() -> Self {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// Every ACL on this resource (any pattern type).
    pub fn resource(resource_type: ResourceType, name: impl Into<String>) -> Self {
        AclBindingFilter {
            resource_type,
            resource_name: Some(name.into()),
            ..Self::any()
        }
    }
}

impl fmt::Display for AclBindingFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = |s: &Option<String>| s.clone().unwrap_or_else(|| "<any>".into());
        write!(
            f,
            "{} {} {} on {}:{}:{} from {}",
            self.permission,
            o(&self.principal),
            self.operation,
            self.resource_type,
            self.pattern_type,
            o(&self.resource_name),
            o(&self.host)
        )
    }
}

impl Admin {
    /// Creates ACLs. One outcome per binding.
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<ItemResults<AclBinding, ()>> {
        let creations: Vec<AclCreation> = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type.code())
                    .with_resource_name(sb(&a.resource_name))
                    .with_resource_pattern_type(a.pattern_type.code())
                    .with_principal(sb(&a.principal))
                    .with_host(sb(&a.host))
                    .with_operation(a.operation.code())
                    .with_permission_type(a.permission.code())
            })
            .collect();
        let sent = self
            .call(
                "create acls",
                Target::AnyBroker,
                |_| Ok(CreateAclsRequest::default().with_creations(creations.clone())),
                |_| (0, None),
            )
            .await?;
        let mut out = ItemResults::new("create acls");
        for (acl, r) in acls.iter().zip(sent.response.results.iter()) {
            out.insert(
                acl.clone(),
                match ItemError::from_code(r.error_code, r.error_message.as_deref()) {
                    Some(e) => Err(e),
                    None => Ok(()),
                },
            );
        }
        for acl in acls {
            out.insert_missing(acl.clone());
        }
        Ok(out)
    }

    /// The ACLs matching `filter`.
    pub async fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.resource_name.as_deref().map(sb))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(sb))
            .with_host_filter(filter.host.as_deref().map(sb))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let sent = self
            .call(
                "describe acls",
                Target::AnyBroker,
                |_| Ok(req.clone()),
                |r: &kafka_protocol::messages::DescribeAclsResponse| {
                    (r.error_code, opt_msg(&r.error_message))
                },
            )
            .await?;
        let mut out = Vec::new();
        for res in &sent.response.resources {
            for a in &res.acls {
                out.push(AclBinding {
                    resource_type: ResourceType::from_code(res.resource_type),
                    resource_name: res.resource_name.to_string(),
                    pattern_type: PatternType::from_code(res.pattern_type),
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: AclOperation::from_code(a.operation),
                    permission: AclPermission::from_code(a.permission_type),
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the ACLs matching each filter; each filter's outcome lists what it deleted.
    pub async fn delete_acls(
        &self,
        filters: &[AclBindingFilter],
    ) -> Result<ItemResults<AclBindingFilter, Vec<AclBinding>>> {
        let wire: Vec<DeleteAclsFilter> = filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type.code())
                    .with_resource_name_filter(f.resource_name.as_deref().map(sb))
                    .with_pattern_type_filter(f.pattern_type.code())
                    .with_principal_filter(f.principal.as_deref().map(sb))
                    .with_host_filter(f.host.as_deref().map(sb))
                    .with_operation(f.operation.code())
                    .with_permission_type(f.permission.code())
            })
            .collect();
        let sent = self
            .call(
                "delete acls",
                Target::AnyBroker,
                |_| Ok(DeleteAclsRequest::default().with_filters(wire.clone())),
                |_| (0, None),
            )
            .await?;
        let mut out = ItemResults::new("delete acls");
        for (f, r) in filters.iter().zip(sent.response.filter_results.iter()) {
            if let Some(e) = ItemError::from_code(r.error_code, r.error_message.as_deref()) {
                out.insert(f.clone(), Err(e));
                continue;
            }
            let mut deleted = Vec::new();
            let mut failed = None;
            for m in &r.matching_acls {
                if let Some(e) = ItemError::from_code(m.error_code, m.error_message.as_deref()) {
                    failed = Some(e);
                    continue;
                }
                deleted.push(AclBinding {
                    resource_type: ResourceType::from_code(m.resource_type),
                    resource_name: m.resource_name.to_string(),
                    pattern_type: PatternType::from_code(m.pattern_type),
                    principal: m.principal.to_string(),
                    host: m.host.to_string(),
                    operation: AclOperation::from_code(m.operation),
                    permission: AclPermission::from_code(m.permission_type),
                });
            }
            out.insert(f.clone(), failed.map_or(Ok(deleted), Err));
        }
        for f in filters {
            out.insert_missing(f.clone());
        }
        Ok(out)
    }
}
