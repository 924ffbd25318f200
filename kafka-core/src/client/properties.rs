//! Java-style configuration properties (`bootstrap.servers=...`, `linger.ms=5`).
//!
//! Kafka engineers configure clients with the Java client's property names. [`Properties`] holds
//! such a set; each role takes the keys it understands ([`ClientConfig::from_properties`] takes
//! the common ones, the producer, consumer and admin builders take theirs), and
//! [`Properties::finish`] rejects whatever is left, naming the nearest known key, so a typo such
//! as `linger.msec` is an error at build time instead of a silently ignored setting.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::client::config::ClientConfig;
use crate::client::error::Error;
use crate::net::{ConnectionConfig, SaslConfig, TlsConfig};

/// A set of `key=value` settings, taken key by key by the parts that understand them.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    map: BTreeMap<String, String>,
}

fn config_error(reason: impl Into<String>) -> Error {
    Error::Config {
        reason: reason.into(),
    }
}

impl Properties {
    /// Properties from key/value pairs; a later duplicate key wins. Keys and values are trimmed.
    pub fn new<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Properties {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().trim().to_owned(), v.as_ref().trim().to_owned()))
                .collect(),
        }
    }

    /// Parses the text of a Java `.properties` file: `key=value` or `key: value` lines, `#` and
    /// `!` comments, blank lines. (Line continuations and escapes, rare in client configs, are
    /// not supported: a line ending in `\` is an error rather than a wrong value.)
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            if line.ends_with('\\') {
                return Err(config_error(format!(
                    "line {}: line continuations are not supported",
                    n + 1
                )));
            }
            let split = line.find(['=', ':']).ok_or_else(|| {
                config_error(format!("line {}: expected key=value, got {line:?}", n + 1))
            })?;
            let (key, value) = (line[..split].trim(), line[split + 1..].trim());
            if key.is_empty() {
                return Err(config_error(format!("line {}: empty key", n + 1)));
            }
            map.insert(key.to_owned(), value.to_owned());
        }
        Ok(Properties { map })
    }

    /// Reads and parses a `.properties` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| config_error(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Sets a key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.map.insert(key.into(), value.into());
        self
    }

    /// Whether the key is (still) present.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Whether every key has been taken.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes and returns a key's value.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key)
    }

    /// Removes a key and parses its value.
    pub fn take_parsed<T>(&mut self, key: &str) -> Result<Option<T>, Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|e| config_error(format!("{key}={v:?}: {e}"))),
        }
    }

    /// Removes a key holding a whole number of milliseconds (`linger.ms`, `...timeout.ms`).
    pub fn take_millis(&mut self, key: &str) -> Result<Option<Duration>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(|ms| Some(Duration::from_millis(ms)))
                .map_err(|_| {
                    config_error(format!(
                        "{key}={v:?}: expected a whole, non-negative number of milliseconds"
                    ))
                }),
        }
    }

    /// Removes a boolean key (`true` / `false`, any case).
    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(config_error(format!("{key}={v:?}: expected true or false"))),
        }
    }

    /// Fails if any key is left, naming each and the nearest key in `known` (the keys that the
    /// caller and everything it delegated to understand).
    pub fn finish(self, known: &[&str]) -> Result<(), Error> {
        if self.map.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        for key in self.map.keys() {
            match nearest(key, known) {
                Some(near) => parts.push(format!("{key:?} (did you mean {near:?}?)")),
                None => parts.push(format!("{key:?}")),
            }
        }
        Err(config_error(format!(
            "unknown or unsupported configuration key{}: {}",
            if parts.len() == 1 { "" } else { "s" },
            parts.join(", ")
        )))
    }
}

/// The known key closest to `key` by edit distance, if it is close enough to be a likely typo.
fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The keys [`ClientConfig::from_properties`] understands.
pub const CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "client.dns.lookup",
    "request.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "receive.message.max.bytes",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "metadata.max.age.ms",
    "default.api.timeout.ms",
    "security.protocol",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
    DANGEROUS_PLAIN_WITHOUT_TLS,
];

/// Opt-in key for SASL/PLAIN over an unencrypted connection (the password crosses the network
/// in clear text); see [`SaslConfig::dangerous_allow_plain_without_tls`].
pub const DANGEROUS_PLAIN_WITHOUT_TLS: &str = "dangerous.sasl.plain.without.tls";

impl ClientConfig {
    /// Takes the common client keys out of `props` ([`CLIENT_KEYS`]), leaving the rest for the
    /// role's own builder. `bootstrap.servers` is required. TLS material must be PEM
    /// (`ssl.truststore.type=PEM`, `ssl.keystore.type=PEM`; JKS and PKCS12 stores are Java
    /// formats and are refused with a clear error). Hostname verification cannot be switched off
    /// through properties: use [`TlsConfig::dangerous_disable_hostname_verification`] in code.
    pub fn from_properties(props: &mut Properties) -> Result<ClientConfig, Error> {
        let servers = props
            .take("bootstrap.servers")
            .ok_or_else(|| config_error("bootstrap.servers is required"))?;
        let mut config = ClientConfig::new([servers])?;
        let mut conn = ConnectionConfig::default();
        if let Some(id) = props.take("client.id") {
            if !id.is_empty() {
                conn.client_id = Some(id);
            }
        }
        if let Some(v) = props.take("client.dns.lookup") {
            if v != "use_all_dns_ips" {
                return Err(config_error(format!(
                    "client.dns.lookup={v:?}: only use_all_dns_ips (the default) is supported"
                )));
            }
        }
        if let Some(t) = props.take_millis("request.timeout.ms")? {
            conn.request_timeout = t;
        }
        if let Some(t) = props.take_millis("socket.connection.setup.timeout.ms")? {
            conn.connect_timeout = t;
        }
        if let Some(n) = props.take_parsed::<usize>("receive.message.max.bytes")? {
            conn.max_frame_size = n;
        }
        if let Some(t) = props.take_millis("retry.backoff.ms")? {
            config.retry_backoff.initial = t;
        }
        if let Some(t) = props.take_millis("retry.backoff.max.ms")? {
            config.retry_backoff.max = t;
        }
        if let Some(t) = props.take_millis("reconnect.backoff.ms")? {
            config.reconnect_backoff.initial = t;
        }
        if let Some(t) = props.take_millis("reconnect.backoff.max.ms")? {
            config.reconnect_backoff.max = t;
        }
        if let Some(t) = props.take_millis("metadata.max.age.ms")? {
            config.metadata_max_age = t;
        }
        if let Some(t) = props.take_millis("default.api.timeout.ms")? {
            config.default_api_timeout = t;
        }

        let protocol = props
            .take("security.protocol")
            .unwrap_or_else(|| "PLAINTEXT".to_owned())
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(config_error(format!(
                "security.protocol={other:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )))
            }
        };
        let tls_keys = [
            "ssl.truststore.type",
            "ssl.truststore.location",
            "ssl.truststore.certificates",
            "ssl.keystore.type",
            "ssl.keystore.location",
            "ssl.keystore.certificate.chain",
            "ssl.keystore.key",
            "ssl.key.password",
            "ssl.endpoint.identification.algorithm",
        ];
        if tls {
            conn.tls = Some(tls_from_properties(props)?);
        } else if let Some(k) = tls_keys.iter().find(|k| props.contains(k)) {
            return Err(config_error(format!(
                "{k} is set but security.protocol is {protocol}; use SSL or SASL_SSL for TLS"
            )));
        }
        let sasl_keys = [
            "sasl.mechanism",
            "sasl.jaas.config",
            "sasl.username",
            "sasl.password",
        ];
        if sasl {
            conn.sasl = Some(sasl_from_properties(props, tls)?);
        } else if let Some(k) = sasl_keys.iter().find(|k| props.contains(k)) {
            return Err(config_error(format!(
                "{k} is set but security.protocol is {protocol}; use SASL_PLAINTEXT or SASL_SSL"
            )));
        }
        // Meaningful only for SASL/PLAIN without TLS; harmless elsewhere.
        props.take(DANGEROUS_PLAIN_WITHOUT_TLS);
        config = config.with_connection(conn);
        config.validate()?;
        Ok(config)
    }
}

fn net_config_error(e: crate::net::NetError) -> Error {
    config_error(e.to_string())
}

fn tls_from_properties(props: &mut Properties) -> Result<TlsConfig, Error> {
    let mut tls = TlsConfig::new();
    for (type_key, store) in [
        ("ssl.truststore.type", "truststore"),
        ("ssl.keystore.type", "keystore"),
    ] {
        if let Some(t) = props.take(type_key) {
            if !t.eq_ignore_ascii_case("PEM") {
                return Err(config_error(format!(
                    "{type_key}={t:?}: only PEM {store}s are supported (convert JKS/PKCS12 with \
                     keytool/openssl)"
                )));
            }
        }
    }
    if let Some(pem) = props.take("ssl.truststore.certificates") {
        tls = tls.with_ca_pem(pem.as_bytes()).map_err(net_config_error)?;
    } else if let Some(path) = props.take("ssl.truststore.location") {
        tls = tls.with_ca_pem_file(&path).map_err(net_config_error)?;
    }
    if props.take("ssl.key.password").is_some() {
        return Err(config_error(
            "ssl.key.password: encrypted private keys are not supported; use an unencrypted PEM key",
        ));
    }
    match (
        props.take("ssl.keystore.certificate.chain"),
        props.take("ssl.keystore.key"),
        props.take("ssl.keystore.location"),
    ) {
        (Some(chain), Some(key), None) => {
            tls = tls
                .with_client_cert_pem(chain.as_bytes(), key.as_bytes())
                .map_err(net_config_error)?;
        }
        (None, None, Some(path)) => {
            // One PEM file holding the certificate chain and the key, as Java's PEM keystore.
            tls = tls
                .with_client_cert_pem_files(&path, &path)
                .map_err(net_config_error)?;
        }
        (None, None, None) => {}
        _ => {
            return Err(config_error(
                "set either ssl.keystore.location (one PEM file with chain and key) or both \
                 ssl.keystore.certificate.chain and ssl.keystore.key",
            ))
        }
    }
    if let Some(alg) = props.take("ssl.endpoint.identification.algorithm") {
        if !alg.eq_ignore_ascii_case("https") {
            return Err(config_error(format!(
                "ssl.endpoint.identification.algorithm={alg:?}: hostname verification stays on \
                 (https); to switch it off, call TlsConfig::dangerous_disable_hostname_verification \
                 in code"
            )));
        }
    }
    Ok(tls)
}

fn sasl_from_properties(props: &mut Properties, tls: bool) -> Result<SaslConfig, Error> {
    let mechanism = props
        .take("sasl.mechanism")
        .unwrap_or_else(|| "GSSAPI".to_owned())
        .to_ascii_uppercase();
    let (mut user, mut password) = (props.take("sasl.username"), props.take("sasl.password"));
    if let Some(jaas) = props.take("sasl.jaas.config") {
        let (u, p) = parse_jaas(&jaas)?;
        user = user.or(u);
        password = password.or(p);
    }
    let dangerous = props
        .take_bool(DANGEROUS_PLAIN_WITHOUT_TLS)?
        .unwrap_or(false);
    let creds = |mechanism: &str| match (user.clone(), password.clone()) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(config_error(format!(
            "sasl.mechanism={mechanism} needs a username and password (sasl.jaas.config with \
             username=\"...\" password=\"...\", or sasl.username and sasl.password)"
        ))),
    };
    let sasl = match mechanism.as_str() {
        "PLAIN" => {
            let (u, p) = creds("PLAIN")?;
            let s = SaslConfig::plain(u, p);
            if !tls && !dangerous {
                return Err(config_error(format!(
                    "SASL/PLAIN over SASL_PLAINTEXT sends the password in clear text; use SASL_SSL, \
                     a SCRAM mechanism, or set {DANGEROUS_PLAIN_WITHOUT_TLS}=true"
                )));
            }
            if dangerous {
                s.dangerous_allow_plain_without_tls()
            } else {
                s
            }
        }
        "SCRAM-SHA-256" => {
            let (u, p) = creds("SCRAM-SHA-256")?;
            SaslConfig::scram_sha256(u, p)
        }
        "SCRAM-SHA-512" => {
            let (u, p) = creds("SCRAM-SHA-512")?;
            SaslConfig::scram_sha512(u, p)
        }
        "OAUTHBEARER" => {
            return Err(config_error(
                "sasl.mechanism=OAUTHBEARER needs a token provider: build SaslConfig::oauthbearer \
                 in code and set it with ConnectionConfig::with_sasl",
            ))
        }
        other => {
            return Err(config_error(format!(
                "sasl.mechanism={other:?} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, \
                 OAUTHBEARER in code)"
            )))
        }
    };
    Ok(sasl)
}

/// Reads `username="..."` and `password="..."` out of a JAAS line such as
/// `org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password="b";`.
fn parse_jaas(jaas: &str) -> Result<(Option<String>, Option<String>), Error> {
    let mut user = None;
    let mut password = None;
    let mut rest = jaas;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or("")
            .trim();
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| config_error("sasl.jaas.config: unterminated quoted value"))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key {
            "username" => user = Some(value.to_owned()),
            "password" => password = Some(value.to_owned()),
            _ => {}
        }
        rest = tail;
    }
    Ok((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_properties_text() {
        let p = Properties::parse(
            "# comment\n! also\n\nbootstrap.servers = a:1,b:2\nlinger.ms: 5\nclient.id=x=y\n",
        )
        .unwrap();
        let mut p2 = p.clone();
        assert_eq!(p2.take("bootstrap.servers").as_deref(), Some("a:1,b:2"));
        assert_eq!(
            p2.take_millis("linger.ms").unwrap(),
            Some(Duration::from_millis(5))
        );
        assert_eq!(p2.take("client.id").as_deref(), Some("x=y"));
        assert!(p2.is_empty());
        assert!(Properties::parse("novalue\n").is_err());
        assert!(Properties::parse("a=b\\\n c").is_err());
    }

    #[test]
    fn typed_takes_report_the_key() {
        let mut p = Properties::new([("a", "x"), ("b", "maybe"), ("c", "-1")]);
        let e = p.take_parsed::<u32>("a").unwrap_err().to_string();
        assert!(e.contains("a=\"x\""), "{e}");
        assert!(p.take_bool("b").is_err());
        assert!(p.take_millis("c").is_err());
    }

    #[test]
    fn unknown_keys_name_the_nearest_known_one() {
        let p = Properties::new([("linger.msec", "5"), ("zzzzzzzzzzzz", "1")]);
        let e = p.finish(&["linger.ms", "acks"]).unwrap_err().to_string();
        assert!(
            e.contains("\"linger.msec\" (did you mean \"linger.ms\"?)"),
            "{e}"
        );
        assert!(e.contains("\"zzzzzzzzzzzz\""), "{e}");
        assert!(!e.contains("did you mean \"acks\""), "{e}");
        Properties::new(Vec::<(String, String)>::new())
            .finish(&[])
            .unwrap();
    }

    #[test]
    fn client_config_from_properties() {
        let mut p = Properties::new([
            ("bootstrap.servers", "a:1, b:2"),
            ("client.id", "svc"),
            ("request.timeout.ms", "1234"),
            ("retry.backoff.ms", "7"),
            ("default.api.timeout.ms", "9000"),
            ("linger.ms", "3"),
        ]);
        let c = ClientConfig::from_properties(&mut p).unwrap();
        assert_eq!(c.bootstrap_servers.len(), 2);
        assert_eq!(c.connection.client_id.as_deref(), Some("svc"));
        assert_eq!(c.connection.request_timeout, Duration::from_millis(1234));
        assert_eq!(c.retry_backoff.initial, Duration::from_millis(7));
        assert_eq!(c.default_api_timeout, Duration::from_secs(9));
        assert!(c.connection.tls.is_none() && c.connection.sasl.is_none());
        // The role's keys are left for the role.
        assert_eq!(p.take("linger.ms").as_deref(), Some("3"));
        assert!(p.is_empty());
    }

    #[test]
    fn security_settings_from_properties() {
        let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3 cret";"#;
        let mut p = Properties::new([
            ("bootstrap.servers", "a:1"),
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.jaas.config", jaas),
        ]);
        let c = ClientConfig::from_properties(&mut p).unwrap();
        let sasl = c.connection.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism_name(), "SCRAM-SHA-512");
        assert_eq!(
            parse_jaas(jaas).unwrap(),
            (Some("alice".into()), Some("s3 cret".into()))
        );

        let plain = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("bootstrap.servers", "a:1"),
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "u"),
                ("sasl.password", "p"),
            ];
            pairs.extend_from_slice(extra);
            ClientConfig::from_properties(&mut Properties::new(pairs))
        };
        let e = plain(&[]).unwrap_err().to_string();
        assert!(e.contains(DANGEROUS_PLAIN_WITHOUT_TLS), "{e}");
        assert!(plain(&[(DANGEROUS_PLAIN_WITHOUT_TLS, "true")]).is_ok());

        for (k, v) in [
            ("security.protocol", "SSL_PLAIN"),
            ("ssl.truststore.location", "/x.pem"),
            ("sasl.mechanism", "PLAIN"),
        ] {
            let mut p = Properties::new([("bootstrap.servers", "a:1"), (k, v)]);
            assert!(ClientConfig::from_properties(&mut p).is_err(), "{k}={v}");
        }
        let mut p = Properties::new([
            ("bootstrap.servers", "a:1"),
            ("security.protocol", "SSL"),
            ("ssl.endpoint.identification.algorithm", ""),
        ]);
        let e = ClientConfig::from_properties(&mut p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dangerous_disable_hostname_verification"), "{e}");
        let mut p = Properties::new([
            ("bootstrap.servers", "a:1"),
            ("security.protocol", "SSL"),
            ("ssl.truststore.type", "JKS"),
        ]);
        assert!(ClientConfig::from_properties(&mut p).is_err());
        let mut p = Properties::new([("bootstrap.servers", "a:1"), ("security.protocol", "SSL")]);
        assert!(ClientConfig::from_properties(&mut p)
            .unwrap()
            .connection
            .tls
            .is_some());
        assert!(ClientConfig::from_properties(&mut Properties::default()).is_err());
    }
}
