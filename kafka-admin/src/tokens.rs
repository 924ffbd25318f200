//! Delegation tokens (KIP-48): create, renew, expire, describe. The broker must have
//! `delegation.token.secret.key` set, and tokens can only be created over an
//! authenticated (SASL or mTLS) connection that is not itself token-authenticated.

use std::time::Duration;

use bytes::Bytes;
use kafka_core::client::Target;
use kafka_protocol::messages::create_delegation_token_request::CreatableRenewers;
use kafka_protocol::messages::describe_delegation_token_request::DescribeDelegationTokenOwner;
use kafka_protocol::messages::{
    CreateDelegationTokenRequest, CreateDelegationTokenResponse, DescribeDelegationTokenRequest,
    DescribeDelegationTokenResponse, ExpireDelegationTokenRequest, ExpireDelegationTokenResponse,
    RenewDelegationTokenRequest, RenewDelegationTokenResponse,
};

use crate::admin::{sb, Admin};
use crate::error::{AdminError, Result};

/// A delegation token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DelegationToken {
    /// Token id (the SASL/SCRAM user name when authenticating with it).
    pub token_id: String,
    /// The HMAC (the password when authenticating with it; identifies it to renew/expire).
    pub hmac: Bytes,
    /// Owner principal (`User:alice`).
    pub owner: String,
    /// Who asked for it (v3+; else the owner).
    pub requester: String,
    /// Issued at (ms since the epoch).
    pub issue_timestamp_ms: i64,
    /// Expires at unless renewed.
    pub expiry_timestamp_ms: i64,
    /// Cannot be renewed past this.
    pub max_timestamp_ms: i64,
    /// Principals that may renew it.
    pub renewers: Vec<String>,
}

fn split_principal(p: &str) -> Result<(String, String)> {
    p.split_once(':')
        .map(|(t, n)| (t.to_owned(), n.to_owned()))
        .ok_or_else(|| {
            AdminError::invalid(format!(
                "principal {p:?} is not of the form Type:name (User:alice)"
            ))
        })
}

fn ms(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Admin {
    /// Creates a token for the authenticated principal; `max_lifetime` `None` uses the
    /// broker's `delegation.token.max.lifetime.ms`.
    pub async fn create_delegation_token(
        &self,
        renewers: &[&str],
        max_lifetime: Option<Duration>,
    ) -> Result<DelegationToken> {
        let renewers_wire = renewers
            .iter()
            .map(|r| {
                split_principal(r).map(|(t, n)| {
                    CreatableRenewers::default()
                        .with_principal_type(sb(&t))
                        .with_principal_name(sb(&n))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let sent = self
            .call(
                "create delegation token",
                Target::AnyBroker,
                |_| {
                    Ok(CreateDelegationTokenRequest::default()
                        .with_renewers(renewers_wire.clone())
                        .with_max_lifetime_ms(ms(max_lifetime)))
                },
                |r: &CreateDelegationTokenResponse| (r.error_code, None),
            )
            .await?;
        let r = sent.response;
        let owner = format!("{}:{}", r.principal_type, r.principal_name);
        let requester = if sent.version >= 3 && !r.token_requester_principal_name.is_empty() {
            format!(
                "{}:{}",
                r.token_requester_principal_type, r.token_requester_principal_name
            )
        } else {
            owner.clone()
        };
        Ok(DelegationToken {
            token_id: r.token_id.to_string(),
            hmac: r.hmac.clone(),
            owner,
            requester,
            issue_timestamp_ms: r.issue_timestamp_ms,
            expiry_timestamp_ms: r.expiry_timestamp_ms,
            max_timestamp_ms: r.max_timestamp_ms,
            renewers: renewers.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// Renews a token by `period` (`None`: the broker's renew interval); returns the new
    /// expiry timestamp (ms).
    pub async fn renew_delegation_token(
        &self,
        hmac: &Bytes,
        period: Option<Duration>,
    ) -> Result<i64> {
        let sent = self
            .call(
                "renew delegation token",
                Target::AnyBroker,
                |_| {
                    Ok(RenewDelegationTokenRequest::default()
                        .with_hmac(hmac.clone())
                        .with_renew_period_ms(ms(period)))
                },
                |r: &RenewDelegationTokenResponse| (r.error_code, None),
            )
            .await?;
        Ok(sent.response.expiry_timestamp_ms)
    }

    /// Expires a token: `None` invalidates it at once (it is no longer described);
    /// `Some(period)` moves its expiry to now + period. Returns the new expiry timestamp (ms).
    pub async fn expire_delegation_token(
        &self,
        hmac: &Bytes,
        period: Option<Duration>,
    ) -> Result<i64> {
        let sent = self
            .call(
                "expire delegation token",
                Target::AnyBroker,
                |_| {
                    Ok(ExpireDelegationTokenRequest::default()
                        .with_hmac(hmac.clone())
                        .with_expiry_time_period_ms(ms(period)))
                },
                |r: &ExpireDelegationTokenResponse| (r.error_code, None),
            )
            .await?;
        Ok(sent.response.expiry_timestamp_ms)
    }

    /// Describes tokens owned by `owners` (every token the caller may see when `None`).
    pub async fn describe_delegation_tokens(
        &self,
        owners: Option<&[&str]>,
    ) -> Result<Vec<DelegationToken>> {
        let owners_wire = owners
            .map(|os| {
                os.iter()
                    .map(|o| {
                        split_principal(o).map(|(t, n)| {
                            DescribeDelegationTokenOwner::default()
                                .with_principal_type(sb(&t))
                                .with_principal_name(sb(&n))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let sent = self
            .call(
                "describe delegation tokens",
                Target::AnyBroker,
                |_| Ok(DescribeDelegationTokenRequest::default().with_owners(owners_wire.clone())),
                |r: &DescribeDelegationTokenResponse| (r.error_code, None),
            )
            .await?;
        Ok(sent
            .response
            .tokens
            .iter()
            .map(|t| {
                let owner = format!("{}:{}", t.principal_type, t.principal_name);
                DelegationToken {
                    token_id: t.token_id.to_string(),
                    hmac: t.hmac.clone(),
                    requester: if t.token_requester_principal_name.is_empty() {
                        owner.clone()
                    } else {
                        format!(
                            "{}:{}",
                            t.token_requester_principal_type, t.token_requester_principal_name
                        )
                    },
                    owner,
                    issue_timestamp_ms: t.issue_timestamp,
                    expiry_timestamp_ms: t.expiry_timestamp,
                    max_timestamp_ms: t.max_timestamp,
                    renewers: t
                        .renewers
                        .iter()
                        .map(|r| format!("{}:{}", r.principal_type, r.principal_name))
                        .collect(),
                }
            })
            .collect())
    }
}
