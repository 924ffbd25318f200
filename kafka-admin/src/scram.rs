//! SCRAM credentials (KIP-554): describe, and alter (upsert with a salted password computed
//! here, or delete). The password never leaves the client: only salt, iterations and
//! PBKDF2 output are sent.

use std::num::NonZeroU32;

use bytes::Bytes;
use kafka_core::client::Target;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use ring::rand::SecureRandom;

use crate::admin::{opt_msg, sb, Admin};
use crate::error::{AdminError, ItemError, ItemResults, Result};

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
    /// A mechanism this client does not know.
    Unknown,
}

impl ScramMechanism {
    fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
            ScramMechanism::Unknown => 0,
        }
    }

    fn from_code(c: i8) -> Self {
        match c {
            1 => ScramMechanism::Sha256,
            2 => ScramMechanism::Sha512,
            _ => ScramMechanism::Unknown,
        }
    }
}

/// A credential of a user, as described (never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    /// Mechanism.
    pub mechanism: ScramMechanism,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

/// A change to a user's SCRAM credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScramAlteration {
    /// Create or replace the credential of `user` for `mechanism`.
    Upsert {
        /// User name.
        user: String,
        /// Mechanism.
        mechanism: ScramMechanism,
        /// PBKDF2 iterations (Kafka accepts 4096..=16384).
        iterations: i32,
        /// The password.
        password: String,
    },
    /// Delete the credential of `user` for `mechanism`.
    Delete {
        /// User name.
        user: String,
        /// Mechanism.
        mechanism: ScramMechanism,
    },
}

impl ScramAlteration {
    fn user(&self) -> &str {
        match self {
            ScramAlteration::Upsert { user, .. } | ScramAlteration::Delete { user, .. } => user,
        }
    }
}

fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>> {
    let (alg, len) = match mechanism {
        ScramMechanism::Sha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
        ScramMechanism::Sha512 => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
        ScramMechanism::Unknown => return Err(AdminError::invalid("unknown SCRAM mechanism")),
    };
    let iterations =
        NonZeroU32::new(iterations).ok_or_else(|| AdminError::invalid("zero SCRAM iterations"))?;
    let mut out = vec![0u8; len];
    ring::pbkdf2::derive(alg, iterations, salt, password.as_bytes(), &mut out);
    Ok(out)
}

impl Admin {
    /// Describes the SCRAM credentials of `users` (every user with one when `None`).
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Result<ItemResults<String, Vec<ScramCredentialInfo>>> {
        let sent = self
            .call(
                "describe user scram credentials",
                Target::AnyBroker,
                |_| {
                    Ok(
                        DescribeUserScramCredentialsRequest::default().with_users(users.map(
                            |us| {
                                us.iter()
                                    .map(|u| UserName::default().with_name(sb(u)))
                                    .collect()
                            },
                        )),
                    )
                },
                |r: &DescribeUserScramCredentialsResponse| {
                    (r.error_code, opt_msg(&r.error_message))
                },
            )
            .await?;
        let mut out = ItemResults::new("describe user scram credentials");
        for r in &sent.response.results {
            out.insert(
                r.user.to_string(),
                match ItemError::from_code(r.error_code, r.error_message.as_deref()) {
                    Some(e) => Err(e),
                    None => Ok(r
                        .credential_infos
                        .iter()
                        .map(|c| ScramCredentialInfo {
                            mechanism: ScramMechanism::from_code(c.mechanism),
                            iterations: c.iterations,
                        })
                        .collect()),
                },
            );
        }
        for u in users.into_iter().flatten() {
            out.insert_missing((*u).to_owned());
        }
        Ok(out)
    }

    /// Upserts or deletes SCRAM credentials; one outcome per user.
    pub async fn alter_user_scram_credentials(
        &self,
        alterations: &[ScramAlteration],
    ) -> Result<ItemResults<String, ()>> {
        let rng = ring::rand::SystemRandom::new();
        let mut upsertions = Vec::new();
        let mut deletions = Vec::new();
        for a in alterations {
            match a {
                ScramAlteration::Upsert {
                    user,
                    mechanism,
                    iterations,
                    password,
                } => {
                    if !(4096..=16384).contains(iterations) {
                        return Err(AdminError::invalid(format!(
                            "SCRAM iterations for {user} must be between 4096 and 16384, not {iterations}"
                        )));
                    }
                    let mut salt = [0u8; 32];
                    rng.fill(&mut salt).map_err(|_| {
                        AdminError::invalid("no system randomness for a SCRAM salt")
                    })?;
                    let salted = salted_password(*mechanism, password, &salt, *iterations as u32)?;
                    upsertions.push(
                        ScramCredentialUpsertion::default()
                            .with_name(sb(user))
                            .with_mechanism(mechanism.code())
                            .with_iterations(*iterations)
                            .with_salt(Bytes::copy_from_slice(&salt))
                            .with_salted_password(Bytes::from(salted)),
                    );
                }
                ScramAlteration::Delete { user, mechanism } => deletions.push(
                    ScramCredentialDeletion::default()
                        .with_name(sb(user))
                        .with_mechanism(mechanism.code()),
                ),
            }
        }
        let sent = self
            .call(
                "alter user scram credentials",
                Target::Controller,
                |_| {
                    Ok(AlterUserScramCredentialsRequest::default()
                        .with_upsertions(upsertions.clone())
                        .with_deletions(deletions.clone()))
                },
                |_| (0, None),
            )
            .await?;
        let mut out = ItemResults::new("alter user scram credentials");
        for r in &sent.response.results {
            out.insert(
                r.user.to_string(),
                ItemError::from_code(r.error_code, r.error_message.as_deref()).map_or(Ok(()), Err),
            );
        }
        for a in alterations {
            out.insert_missing(a.user().to_owned());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salted_password_is_pbkdf2() {
        // RFC 7677's SCRAM-SHA-256 example: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
        // 4096 iterations; the ClientKey derived from this SaltedPassword appears in the RFC.
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let a = salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096).unwrap();
        let b = salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            salted_password(ScramMechanism::Sha256, "pencil", &salt, 4097).unwrap()
        );
        assert_eq!(
            salted_password(ScramMechanism::Sha512, "p", &salt, 4096)
                .unwrap()
                .len(),
            64
        );
    }
}
