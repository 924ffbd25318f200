//! TLS for broker connections (security.protocol `SSL` and `SASL_SSL`), through rustls with
//! the `ring` provider: no C toolchain, no OpenSSL.
//!
//! Trust comes from Mozilla's roots (`webpki-roots`, the default), the platform's store, or
//! a CA PEM file (Java's `ssl.truststore.*`). A client certificate and key (PEM) enable mutual
//! TLS (`ssl.keystore.*`). The server name sent in SNI and checked against the certificate is
//! the host connected to, unless overridden; hostname verification is on, and only
//! [`TlsConfig::dangerous_disable_hostname_verification`] turns it off (Java's
//! `ssl.endpoint.identification.algorithm=`), keeping the chain verification.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use crate::net::config::ConnectionConfig;
use crate::net::connection::BoxStream;
use crate::net::error::{NetError, TlsFailure};

/// Where trusted roots come from.
#[derive(Clone)]
enum Roots {
    /// Mozilla's root program, compiled in (`webpki-roots`).
    WebPki,
    /// These certificates only (a CA PEM file, or the platform store loaded eagerly).
    Certs(Vec<CertificateDer<'static>>),
}

/// TLS settings of a connection. The default trusts Mozilla's roots and verifies hostnames.
#[derive(Clone)]
pub struct TlsConfig {
    roots: Roots,
    client_auth: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    server_name: Option<String>,
    verify_hostname: bool,
    custom: Option<Arc<ClientConfig>>,
    built: Arc<OnceLock<Result<Arc<ClientConfig>, String>>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::WebPki => "webpki-roots".to_owned(),
            Roots::Certs(c) => format!("{} certificate(s)", c.len()),
        };
        f.debug_struct("TlsConfig")
            .field("roots", &roots)
            .field("client_certificate", &self.client_auth.is_some())
            .field("server_name", &self.server_name)
            .field("verify_hostname", &self.verify_hostname)
            .field("custom_rustls_config", &self.custom.is_some())
            .finish()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self::new()
    }
}

fn config_error(message: String) -> NetError {
    NetError::Tls {
        broker: String::new(),
        kind: TlsFailure::Config,
        message,
    }
}

impl TlsConfig {
    /// Trust Mozilla's roots (`webpki-roots`), no client certificate, hostname verification on.
    pub fn new() -> Self {
        Self {
            roots: Roots::WebPki,
            client_auth: None,
            server_name: None,
            verify_hostname: true,
            custom: None,
            built: Arc::new(OnceLock::new()),
        }
    }

    fn changed(mut self) -> Self {
        self.built = Arc::new(OnceLock::new());
        self
    }

    /// Trust the platform's certificate store instead (`rustls-native-certs`).
    pub fn with_native_roots(mut self) -> Result<Self, NetError> {
        let loaded = rustls_native_certs::load_native_certs();
        if loaded.certs.is_empty() {
            return Err(config_error(format!(
                "no certificates in the platform store ({} errors: {:?})",
                loaded.errors.len(),
                loaded.errors.first().map(|e| e.to_string())
            )));
        }
        self.roots = Roots::Certs(loaded.certs);
        Ok(self.changed())
    }

    /// Trust only the CA certificate(s) in this PEM file (Java's truststore).
    pub fn with_ca_pem_file(self, path: impl AsRef<Path>) -> Result<Self, NetError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| config_error(format!("cannot read CA file {}: {e}", path.display())))?;
        self.with_ca_pem(&pem)
            .map_err(|e| config_error(format!("CA file {}: {e}", path.display())))
    }

    /// Trust only the CA certificate(s) in this PEM text.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, NetError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error(format!("bad CA PEM: {e}")))?;
        if certs.is_empty() {
            return Err(config_error("no CERTIFICATE in the CA PEM".to_owned()));
        }
        self.roots = Roots::Certs(certs);
        Ok(self.changed())
    }

    /// Present this client certificate chain and key (PEM files) for mutual TLS.
    pub fn with_client_cert_pem_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, NetError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| config_error(format!("cannot read {}: {e}", p.display())))
        };
        let cert = read(cert_chain.as_ref())?;
        let key = read(key.as_ref())?;
        self.with_client_cert_pem(&cert, &key)
    }

    /// Present this client certificate chain and key (PEM text) for mutual TLS.
    pub fn with_client_cert_pem(mut self, cert_chain: &[u8], key: &[u8]) -> Result<Self, NetError> {
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error(format!("bad client certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(config_error(
                "no CERTIFICATE in the client certificate PEM".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| config_error(format!("bad client key PEM: {e}")))?;
        self.client_auth = Some((certs, Arc::new(key)));
        Ok(self.changed())
    }

    /// Send and verify this server name instead of the host connected to (for brokers
    /// reached through an address that is not in their certificate).
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self.changed()
    }

    /// Accept a certificate that chains to a trusted root but does not name the host
    /// connected to. This opens the door to man-in-the-middle attacks by anyone holding a
    /// certificate from the same CA; prefer [`TlsConfig::with_server_name`].
    pub fn dangerous_disable_hostname_verification(mut self) -> Self {
        self.verify_hostname = false;
        self.changed()
    }

    /// Use a rustls configuration built elsewhere, as is (its verifier, its client auth).
    pub fn from_rustls_config(config: Arc<ClientConfig>) -> Self {
        let mut tls = Self::new();
        tls.custom = Some(config);
        tls
    }

    /// The rustls configuration, built once and cached.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, NetError> {
        if let Some(c) = &self.custom {
            return Ok(c.clone());
        }
        self.built
            .get_or_init(|| self.build().map_err(|e| e.to_string()))
            .clone()
            .map_err(config_error)
    }

    fn build(&self) -> Result<Arc<ClientConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match &self.roots {
            Roots::WebPki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::Certs(certs) => {
                for c in certs {
                    roots.add(c.clone())?;
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.verify_hostname {
            builder.with_root_certificates(roots)
        } else {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostnameVerifier { inner }))
        };
        let config = match &self.client_auth {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    fn server_name(&self, host: &str) -> Result<ServerName<'static>, NetError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned())
            .map_err(|e| config_error(format!("invalid TLS server name {name:?}: {e}")))
    }
}

/// Full chain verification, without the check that the certificate names the host.
#[derive(Debug)]
struct NoHostnameVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NoHostnameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // WebPkiServerVerifier checks the chain first and the name last: a name error means
        // the chain is trusted.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Wraps the TCP stream in TLS when the configuration asks for it.
pub(crate) async fn wrap(
    tcp: TcpStream,
    host: &str,
    broker: &str,
    config: &ConnectionConfig,
) -> Result<(BoxStream, bool), NetError> {
    let Some(tls) = &config.tls else {
        return Ok((Box::new(tcp), false));
    };
    let client_config = tls.client_config()?;
    let server_name = tls.server_name(host)?;
    let connector = tokio_rustls::TlsConnector::from(client_config);
    match connector.connect(server_name.clone(), tcp).await {
        Ok(stream) => Ok((Box::new(stream), true)),
        Err(e) => Err(handshake_error(broker, &server_name, e)),
    }
}

fn handshake_error(broker: &str, server_name: &ServerName<'_>, e: io::Error) -> NetError {
    if let Some(err) = rustls_error(&e) {
        let (kind, mut message) = describe(err);
        if kind == TlsFailure::NameMismatch {
            message = format!(
                "{message}; the certificate does not name {:?}: connect by a name in its \
                 subjectAltName, or set TlsConfig::with_server_name",
                server_name.to_str()
            );
        }
        return NetError::Tls {
            broker: broker.to_owned(),
            kind,
            message,
        };
    }
    if matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
    ) {
        return NetError::Tls {
            broker: broker.to_owned(),
            kind: TlsFailure::NotTls,
            message: format!(
                "the broker closed the connection during the TLS handshake ({e}): is this a \
                 plaintext or SASL_PLAINTEXT listener?"
            ),
        };
    }
    NetError::Tls {
        broker: broker.to_owned(),
        kind: TlsFailure::Other,
        message: e.to_string(),
    }
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn describe(err: &rustls::Error) -> (TlsFailure, String) {
    use rustls::Error as E;
    match err {
        E::InvalidCertificate(c) => {
            let kind = match c {
                CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
                _ => TlsFailure::BadCertificate,
            };
            let hint = if kind == TlsFailure::UnknownIssuer {
                " (the broker's certificate does not chain to a trusted CA: configure its CA \
                 with TlsConfig::with_ca_pem_file)"
            } else {
                ""
            };
            (kind, format!("invalid broker certificate: {err}{hint}"))
        }
        E::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            let hint = match alert {
                A::BadCertificate
                | A::CertificateRequired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::HandshakeFailure => {
                    ": it rejected this client's certificate, or wanted one (a listener with \
                     ssl.client.auth=required needs TlsConfig::with_client_cert_pem_files)"
                }
                _ => "",
            };
            (
                TlsFailure::AlertReceived,
                format!("the broker sent TLS alert {alert:?}{hint}"),
            )
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => (
            TlsFailure::NotTls,
            format!("the broker does not speak TLS here ({err}): is this a plaintext listener?"),
        ),
        _ => (TlsFailure::Other, err.to_string()),
    }
}

/// Maps an I/O error of the (possibly TLS) stream after the handshake: TLS errors (such as
/// an alert because the broker wanted a client certificate) become [`NetError::Tls`].
pub(crate) fn map_stream_error(broker: &str, source: io::Error) -> Result<NetError, io::Error> {
    match rustls_error(&source) {
        Some(err) => {
            let (kind, message) = describe(err);
            Ok(NetError::Tls {
                broker: broker.to_owned(),
                kind,
                message,
            })
        }
        None => Err(source),
    }
}
