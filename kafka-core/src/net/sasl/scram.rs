//! SCRAM-SHA-256 and SCRAM-SHA-512 client (RFC 5802, RFC 7677; Kafka: KIP-84), sans-IO.
//!
//! Beyond the happy path, the client refuses what a hostile or broken server could use
//! against it: a server nonce that does not extend ours, an iteration count below Kafka's
//! minimum (4096) or absurdly high (CPU exhaustion), mandatory extensions (`m=`), and,
//! above all, a ServerFinal signature that does not verify (the server does not actually know
//! the password: an impostor). A server `e=` error is reported as such.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::SecureRandom;
use ring::{digest, hmac, pbkdf2};

/// Kafka's minimum iteration count for SCRAM credentials.
pub(crate) const MIN_ITERATIONS: u32 = 4096;
/// Far above Kafka's maximum (16384) yet bounded: each iteration is an HMAC.
pub(crate) const MAX_ITERATIONS: u32 = 1 << 20;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    pub(crate) fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramHash::Sha256 => hmac::HMAC_SHA256,
            ScramHash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.digest().output_len()];
        let iterations =
            std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2(), iterations, salt, password, &mut out);
        out
    }

    pub(crate) fn hmac_sign(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }
}

/// `saslname` escaping (RFC 5802 §5.1): `=` and `,` cannot appear raw.
fn escape_username(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

enum State {
    Initial,
    SentFirst,
    SentFinal { server_signature: Vec<u8> },
    Done,
}

/// One SCRAM client exchange.
pub(crate) struct ScramClient {
    hash: ScramHash,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    state: State,
}

impl ScramClient {
    /// A client with a fresh random nonce.
    pub(crate) fn new(hash: ScramHash, username: &str, password: &str) -> Result<Self, String> {
        let mut raw = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| "no randomness available for the SCRAM nonce".to_owned())?;
        Ok(Self::with_nonce(
            hash,
            username,
            password,
            &BASE64.encode(raw),
        ))
    }

    /// A client with a given nonce (tests).
    pub(crate) fn with_nonce(hash: ScramHash, username: &str, password: &str, nonce: &str) -> Self {
        Self {
            hash,
            password: password.to_owned(),
            client_nonce: nonce.to_owned(),
            client_first_bare: format!("n={},r={nonce}", escape_username(username)),
            state: State::Initial,
        }
    }

    /// The client-first message: no channel binding, no authzid.
    pub(crate) fn client_first(&mut self) -> Vec<u8> {
        self.state = State::SentFirst;
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Takes the server-first message, returns the client-final message.
    pub(crate) fn handle_server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        if !matches!(self.state, State::SentFirst) {
            return Err("server-first message out of sequence".to_owned());
        }
        let msg =
            std::str::from_utf8(msg).map_err(|_| "server-first message is not UTF-8".to_owned())?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for (i, attr) in msg.split(',').enumerate() {
            let (key, value) = attr
                .split_once('=')
                .ok_or_else(|| format!("malformed server-first message {msg:?}"))?;
            match key {
                "m" if i == 0 => {
                    return Err("server requires an unsupported SCRAM extension".to_owned())
                }
                "e" => return Err(format!("server error: {value}")),
                "r" => nonce = Some(value),
                "s" => salt = Some(value),
                "i" => iterations = Some(value),
                _ => {} // Extensions we do not know are ignorable (RFC 5802 §5.1).
            }
        }
        let nonce = nonce.ok_or("server-first message has no nonce")?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err("server nonce does not extend the client nonce".to_owned());
        }
        let salt = BASE64
            .decode(salt.ok_or("server-first message has no salt")?)
            .map_err(|_| "server salt is not base64".to_owned())?;
        if salt.is_empty() {
            return Err("server salt is empty".to_owned());
        }
        let iterations: u32 = iterations
            .ok_or("server-first message has no iteration count")?
            .parse()
            .map_err(|_| "server iteration count is not a number".to_owned())?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "server iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        // c=biws is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{msg},{without_proof}", self.client_first_bare);
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac_sign(&salted, b"Client Key");
        let stored_key = h.hash(&client_key);
        let client_signature = h.hmac_sign(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac_sign(&salted, b"Server Key");
        let server_signature = h.hmac_sign(&server_key, auth_message.as_bytes());
        self.state = State::SentFinal { server_signature };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Verifies the server-final message: the exchange succeeds only if the server proves it
    /// knows the password.
    pub(crate) fn handle_server_final(&mut self, msg: &[u8]) -> Result<(), String> {
        let State::SentFinal { server_signature } = &self.state else {
            return Err("server-final message out of sequence".to_owned());
        };
        let msg =
            std::str::from_utf8(msg).map_err(|_| "server-final message is not UTF-8".to_owned())?;
        let first = msg.split(',').next().unwrap_or_default();
        if let Some(err) = first.strip_prefix("e=") {
            return Err(format!("server error: {err}"));
        }
        let Some(v) = first.strip_prefix("v=") else {
            return Err(format!("server-final message has no signature: {msg:?}"));
        };
        let sig = BASE64
            .decode(v)
            .map_err(|_| "server signature is not base64".to_owned())?;
        if !ct_eq(&sig, server_signature) {
            return Err(
                "the server's signature does not verify: it does not know the credentials \
                 (misconfigured or impersonated broker)"
                    .to_owned(),
            );
        }
        self.state = State::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3.
    #[test]
    fn rfc7677_sha256_vector() {
        let mut c =
            ScramClient::with_nonce(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = c
            .handle_server_first(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.handle_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    fn started(hash: ScramHash) -> ScramClient {
        let mut c = ScramClient::with_nonce(hash, "u,=x", "p", "abc");
        assert_eq!(c.client_first(), b"n,,n=u=2C=3Dx,r=abc");
        c
    }

    #[test]
    fn refuses_bad_server_messages() {
        for (msg, want) in [
            (&b"r=xyz,s=c2FsdA==,i=4096"[..], "nonce"),
            (b"r=abc,s=c2FsdA==,i=4096", "nonce"),
            (b"r=abcd,s=c2FsdA==,i=100", "iteration"),
            (b"r=abcd,s=c2FsdA==,i=4294967295", "iteration"),
            (b"r=abcd,s=!!,i=4096", "base64"),
            (b"e=unknown-user", "server error: unknown-user"),
            (b"m=ext,r=abcd,s=c2FsdA==,i=4096", "extension"),
            (b"garbage", "malformed"),
        ] {
            let err = started(ScramHash::Sha512)
                .handle_server_first(msg)
                .unwrap_err();
            assert!(err.contains(want), "{err} / {want}");
        }
    }

    #[test]
    fn wrong_or_missing_server_signature_fails() {
        let mut c = started(ScramHash::Sha512);
        c.handle_server_first(b"r=abcdef,s=c2FsdA==,i=4096")
            .unwrap();
        let err = c.handle_server_final(b"v=AAAA").unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        let err = c.handle_server_final(b"e=invalid-proof").unwrap_err();
        assert!(err.contains("invalid-proof"), "{err}");
        let err = c.handle_server_final(b"x=1").unwrap_err();
        assert!(err.contains("no signature"), "{err}");
    }
}
