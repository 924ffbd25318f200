//! `kafka_core::net::Connection` against a real Apache Kafka: every listener of the kit
//! (PLAINTEXT, SSL, mTLS, SASL_PLAINTEXT, SASL_SSL), every SASL mechanism it enables, and the
//! errors users hit when something is misconfigured. The kit panics when no broker can be
//! had: these tests fail, they never skip.
//!
//! Run against another Kafka version with `KAFKA_KIT_VERSION=3.9.2 cargo test -p tests --test
//! connection`; the negotiation checks follow the broker's version.

use std::sync::Arc;
use std::time::Duration;

use kafka_core::net::{Connection, ConnectionConfig, NetError, SaslConfig, TlsConfig, TlsFailure};
use kafka_protocol::messages::{ApiKey, MetadataRequest, VoteRequest};
use tests::{cluster, Cluster, ClusterSpec, Listener};

/// The same spec as the other multi-node binaries, with every secured listener: a running
/// secured three-node cluster serves them all without a restart.
fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::three_nodes().secured())
}

fn addr(listener: Listener) -> (String, u16) {
    let a = kafka().brokers()[0]
        .addr(listener)
        .unwrap_or_else(|| panic!("the kit's cluster has no {listener} listener"));
    let (host, port) = a.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

fn tls() -> TlsConfig {
    let files = kafka().tls().expect("TLS files of the secured cluster");
    TlsConfig::new().with_ca_pem_file(&files.ca).unwrap()
}

fn creds() -> (String, String) {
    let s = kafka().sasl().expect("SASL users of the secured cluster");
    (s.username.clone(), s.password.clone())
}

fn base() -> ConnectionConfig {
    ConnectionConfig::default()
        .with_client_id("connection-tests")
        .with_connect_timeout(Duration::from_secs(10))
        .with_request_timeout(Duration::from_secs(20))
}

async fn connect(listener: Listener, config: ConnectionConfig) -> Result<Connection, NetError> {
    let (host, port) = addr(listener);
    connect_to(&host, port, config).await
}

async fn connect_to(
    host: &str,
    port: u16,
    config: ConnectionConfig,
) -> Result<Connection, NetError> {
    // Every failure must be prompt and typed, never a hang.
    tokio::time::timeout(
        Duration::from_secs(60),
        Connection::connect(host, port, Arc::new(config)),
    )
    .await
    .expect("connect neither succeeded nor failed within 60 s")
}

/// A metadata round trip that sees the whole cluster.
async fn check_metadata(conn: &Connection) {
    let resp = conn
        .send(MetadataRequest::default().with_topics(None))
        .await
        .unwrap_or_else(|e| panic!("Metadata over {conn:?}: {e}"));
    assert_eq!(resp.brokers.len(), kafka().brokers().len(), "{resp:?}");
    assert!(!conn.is_closed());
}

fn major_version() -> u32 {
    kafka()
        .version()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn plaintext_negotiates_versions_that_follow_the_broker() {
    let conn = connect(Listener::Plaintext, base()).await.unwrap();
    assert!(!conn.is_tls());
    check_metadata(&conn).await;
    let v = conn.api_versions();
    let fetch = ApiKey::Fetch as i16;
    let produce = ApiKey::Produce as i16;
    eprintln!(
        "Kafka {}: ApiVersions v{}, Fetch broker {:?} common {:?}, Produce broker {:?} common {:?}, Metadata max {:?}",
        kafka().version(),
        v.api_versions_version(),
        v.broker_range(fetch),
        v.common_range(fetch),
        v.broker_range(produce),
        v.common_range(produce),
        conn.max_version(ApiKey::Metadata as i16),
    );
    // KIP-511: every supported broker (2.4+) speaks ApiVersions v3 or later.
    assert!(v.api_versions_version() >= 3);
    let (fetch_min, fetch_max) = v.broker_range(fetch).unwrap();
    if major_version() >= 4 {
        // KIP-896: Kafka 4.0 removed Fetch v0-3 (Produce v0-2 were kept for old clients).
        assert_eq!(fetch_min, 4);
        assert!(fetch_max >= 17, "Fetch max {fetch_max}");
    } else {
        assert_eq!(fetch_min, 0);
        assert!(fetch_max <= 17, "Fetch max {fetch_max}");
    }
    // Whatever the broker offers below kafka-protocol's minimum is not negotiated.
    let (produce_common_min, _) = v.common_range(produce).unwrap();
    assert_eq!(produce_common_min, ApiKey::Produce.valid_versions().min);
    // The negotiated maximum is the smaller of both sides' maxima.
    let client_max = ApiKey::Fetch.valid_versions().max;
    assert_eq!(conn.max_version(fetch), Some(fetch_max.min(client_max)));
}

#[tokio::test]
async fn plaintext_pipelines_many_requests_on_one_connection() {
    let conn = connect(Listener::Plaintext, base()).await.unwrap();
    let sends: Vec<_> = (0..32)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move {
                conn.send(MetadataRequest::default().with_topics(None))
                    .await
            })
        })
        .collect();
    for s in sends {
        let resp = s.await.unwrap().unwrap();
        assert_eq!(resp.brokers.len(), kafka().brokers().len());
    }
    assert_eq!(conn.in_flight(), 0);
}

#[tokio::test]
async fn an_api_the_broker_does_not_serve_is_a_typed_error() {
    let conn = connect(Listener::Plaintext, base()).await.unwrap();
    // Vote is a KRaft controller API: brokers' client listeners do not advertise it.
    assert_eq!(conn.max_version(ApiKey::Vote as i16), None);
    let err = tokio::time::timeout(Duration::from_secs(5), conn.send(VoteRequest::default()))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(
        matches!(err, NetError::UnsupportedVersion { api_key: 52, .. }),
        "{err}"
    );
    // And the connection is still fine.
    check_metadata(&conn).await;
}

#[tokio::test]
async fn tls_with_the_cluster_ca() {
    let conn = connect(Listener::Ssl, base().with_tls(tls()))
        .await
        .unwrap();
    assert!(conn.is_tls());
    check_metadata(&conn).await;
    // By DNS name too: the certificate names localhost and 127.0.0.1.
    let (_, port) = addr(Listener::Ssl);
    let conn = connect_to("localhost", port, base().with_tls(tls()))
        .await
        .unwrap();
    check_metadata(&conn).await;
}

#[tokio::test]
async fn mutual_tls_with_and_without_a_client_certificate() {
    let files = kafka().tls().unwrap();
    let with_cert = tls()
        .with_client_cert_pem_files(&files.client_cert, &files.client_key)
        .unwrap();
    let conn = connect(Listener::Mtls, base().with_tls(with_cert))
        .await
        .unwrap();
    check_metadata(&conn).await;

    // Without one, TLS 1.3 completes the client's side of the handshake and the broker's
    // refusal arrives as an alert on the first read: either way, a TLS error.
    let err = connect(Listener::Mtls, base().with_tls(tls()))
        .await
        .unwrap_err();
    eprintln!("mTLS without a client certificate: {err}");
    assert!(matches!(err.root_cause(), NetError::Tls { .. }), "{err}");
    assert!(!err.is_retriable(), "{err}");
}

#[tokio::test]
async fn sasl_plaintext_with_plain() {
    let (user, password) = creds();
    let sasl = SaslConfig::plain(user, password).dangerous_allow_plain_without_tls();
    let conn = connect(Listener::SaslPlaintext, base().with_sasl(sasl))
        .await
        .unwrap();
    check_metadata(&conn).await;
}

#[tokio::test]
async fn sasl_plaintext_with_plain_needs_the_opt_in() {
    let (user, password) = creds();
    let err = connect(
        Listener::SaslPlaintext,
        base().with_sasl(SaslConfig::plain(user, password)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, NetError::Config { .. }), "{err}");
}

#[tokio::test]
async fn sasl_ssl_with_scram_sha256_scram_sha512_and_plain() {
    let (user, password) = creds();
    for sasl in [
        SaslConfig::scram_sha256(&user, &password),
        SaslConfig::scram_sha512(&user, &password),
        SaslConfig::plain(&user, &password),
    ] {
        let mechanism = sasl.mechanism_name();
        let conn = connect(Listener::SaslSsl, base().with_tls(tls()).with_sasl(sasl))
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert!(conn.is_tls());
        check_metadata(&conn).await;
    }
}

#[tokio::test]
async fn sasl_plaintext_with_scram() {
    let (user, password) = creds();
    let sasl = SaslConfig::scram_sha512(user, password);
    let conn = connect(Listener::SaslPlaintext, base().with_sasl(sasl))
        .await
        .unwrap();
    check_metadata(&conn).await;
}

#[tokio::test]
async fn wrong_password_is_an_authentication_failure() {
    let (user, _) = creds();
    for sasl in [
        SaslConfig::scram_sha256(&user, "not-the-password"),
        SaslConfig::scram_sha512(&user, "not-the-password"),
        SaslConfig::plain(&user, "not-the-password"),
    ] {
        let mechanism = sasl.mechanism_name();
        let err = connect(Listener::SaslSsl, base().with_tls(tls()).with_sasl(sasl))
            .await
            .unwrap_err();
        eprintln!("{mechanism} with a wrong password: {err}");
        assert!(
            matches!(err, NetError::AuthenticationFailed { error_code: 58, .. }),
            "{mechanism}: {err}"
        );
        assert!(!err.is_retriable());
    }
}

#[tokio::test]
async fn unknown_ca_is_a_clear_tls_error() {
    // Mozilla's roots do not include the kit's test CA.
    let err = connect(Listener::Ssl, base().with_tls(TlsConfig::new()))
        .await
        .unwrap_err();
    eprintln!("unknown CA: {err}");
    assert!(
        matches!(
            err,
            NetError::Tls {
                kind: TlsFailure::UnknownIssuer,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("trusted CA"), "{err}");
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn hostname_mismatch_is_a_clear_tls_error_unless_dangerously_disabled() {
    let wrong = tls().with_server_name("broker.invalid");
    let err = connect(Listener::Ssl, base().with_tls(wrong.clone()))
        .await
        .unwrap_err();
    eprintln!("hostname mismatch: {err}");
    assert!(
        matches!(
            err,
            NetError::Tls {
                kind: TlsFailure::NameMismatch,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("broker.invalid"), "{err}");
    // Off only through the dangerous switch, and the chain is still verified.
    let conn = connect(
        Listener::Ssl,
        base().with_tls(wrong.dangerous_disable_hostname_verification()),
    )
    .await
    .unwrap();
    check_metadata(&conn).await;
    let err = connect(
        Listener::Ssl,
        base().with_tls(
            TlsConfig::new()
                .with_server_name("broker.invalid")
                .dangerous_disable_hostname_verification(),
        ),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Tls {
                kind: TlsFailure::UnknownIssuer,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn broker_not_listening_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = connect_to("127.0.0.1", port, base()).await.unwrap_err();
    eprintln!("not listening: {err}");
    assert!(matches!(err, NetError::Connect { .. }), "{err}");
    assert!(err.is_retriable());
}

#[tokio::test]
async fn plaintext_client_on_a_tls_port_is_a_clear_error() {
    let err = connect(Listener::Ssl, base()).await.unwrap_err();
    eprintln!("plaintext client on the SSL port: {err}");
    let hinted = match err.root_cause() {
        NetError::TlsExpected { .. } => true,
        NetError::ClosedByBroker {
            while_connecting, ..
        } => *while_connecting,
        _ => false,
    };
    assert!(hinted, "{err}");
}

#[tokio::test]
async fn tls_client_on_a_plaintext_port_is_a_clear_error() {
    let err = connect(Listener::Plaintext, base().with_tls(tls()))
        .await
        .unwrap_err();
    eprintln!("TLS client on the PLAINTEXT port: {err}");
    assert!(
        matches!(
            err,
            NetError::Tls {
                kind: TlsFailure::NotTls,
                ..
            }
        ),
        "{err}"
    );
}

/// KIP-368 against the real broker: the kit's secured clusters expire SASL sessions after
/// `connections.max.reauth.ms` (10 s). A connection that re-authenticates in band stays usable
/// across several session lifetimes; one that does not is cut off by the broker on its first
/// request after expiry. The second half proves the first is not passing by accident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_sessions_are_reauthenticated_before_the_broker_expires_them() {
    let lifetime_ms: u64 = kafka()
        .env("KAFKA_KIT_SASL_REAUTH_MS")
        .expect("the kit sets connections.max.reauth.ms on secured clusters")
        .parse()
        .unwrap();
    let (user, password) = creds();
    let reauth = connect(
        Listener::SaslSsl,
        base()
            .with_tls(tls())
            .with_sasl(SaslConfig::scram_sha512(&user, &password)),
    )
    .await
    .expect("SCRAM-SHA-512 over SASL_SSL");
    let no_reauth = connect(
        Listener::SaslSsl,
        base()
            .with_tls(tls())
            .with_sasl(SaslConfig::scram_sha512(&user, &password).without_reauthentication()),
    )
    .await
    .expect("SCRAM-SHA-512 over SASL_SSL, without re-authentication");
    check_metadata(&reauth).await;
    check_metadata(&no_reauth).await;

    // Keep the first connection busy for 2.5 lifetimes: every request must succeed.
    let step = Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(lifetime_ms * 5 / 2);
    let mut requests = 0;
    while tokio::time::Instant::now() < deadline {
        check_metadata(&reauth).await;
        requests += 1;
        tokio::time::sleep(step).await;
    }
    assert!(requests > 10);

    // The second connection's session expired long ago: the broker closes it.
    let err = no_reauth
        .send(MetadataRequest::default().with_topics(None))
        .await
        .expect_err("the broker must disconnect an expired SASL session");
    assert!(
        matches!(
            err.root_cause(),
            NetError::ClosedByBroker { .. } | NetError::Io { .. }
        ),
        "{err:?}"
    );
}
