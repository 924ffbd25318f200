//! Connection tests against an in-process fake broker speaking raw frames.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::codec::varint::read_uvarint;
use crate::error::CodecError;

pub(crate) struct FakeBroker {
    listener: TcpListener,
    pub(crate) port: u16,
}

impl FakeBroker {
    pub(crate) async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Self { listener, port }
    }

    pub(crate) async fn accept(&self) -> FakeConn {
        let (stream, _) = self.listener.accept().await.unwrap();
        FakeConn {
            stream,
            buf: BytesMut::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) api_key: i16,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
    pub(crate) body: Bytes,
}

impl Req {
    pub(crate) fn decode<M: Decodable>(&self) -> M {
        M::decode(&mut self.body.clone(), self.version).unwrap()
    }
}

pub(crate) struct FakeConn {
    pub(crate) stream: TcpStream,
    buf: BytesMut,
}

/// Every API at every version `kafka-protocol` knows.
pub(crate) fn all_ranges() -> Vec<(i16, i16, i16)> {
    (0..200)
        .filter_map(|k| {
            ApiKey::try_from(k).ok().map(|a| {
                let r = a.valid_versions();
                (k, r.min, r.max)
            })
        })
        .collect()
}

impl FakeConn {
    /// Reads one whole request frame; `None` at end of stream. Panics on a malformed frame:
    /// that is exactly what the client must never send.
    pub(crate) async fn read_request(&mut self) -> Option<Req> {
        loop {
            if self.buf.len() >= 4 {
                let size = i32::from_be_bytes(self.buf[..4].try_into().unwrap());
                assert!((0..10_000_000).contains(&size), "bad request size {size}");
                let size = size as usize;
                if self.buf.len() >= 4 + size {
                    self.buf.advance(4);
                    let mut frame = self.buf.split_to(size).freeze();
                    let api_key = frame.get_i16();
                    let version = frame.get_i16();
                    let correlation_id = frame.get_i32();
                    let cid_len = frame.get_i16();
                    if cid_len > 0 {
                        frame.advance(cid_len as usize);
                    }
                    let key = ApiKey::try_from(api_key).expect("known api key");
                    if key.request_header_version(version) >= 2 {
                        let mut rest: &[u8] = &frame;
                        let n = read_uvarint(&mut rest, "tags").unwrap();
                        assert_eq!(n, 0, "no header tags expected");
                        frame.advance(1);
                    }
                    return Some(Req {
                        api_key,
                        version,
                        correlation_id,
                        body: frame,
                    });
                }
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    assert!(self.buf.is_empty(), "partial frame left on the wire");
                    return None;
                }
                Ok(_) => {}
            }
        }
    }

    pub(crate) fn encode_response<M: Encodable>(
        correlation_id: i32,
        api_key: i16,
        version: i16,
        resp: &M,
    ) -> BytesMut {
        let mut out = BytesMut::new();
        out.put_i32(0);
        out.put_i32(correlation_id);
        let key = ApiKey::try_from(api_key).unwrap();
        if key.response_header_version(version) >= 1 {
            out.put_u8(0);
        }
        resp.encode(&mut out, version).unwrap();
        let size = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&size.to_be_bytes());
        out
    }

    pub(crate) async fn respond<M: Encodable>(&mut self, req: &Req, resp: &M) {
        let out = Self::encode_response(req.correlation_id, req.api_key, req.version, resp);
        self.write_raw(&out).await;
    }

    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Answers the ApiVersions exchange with `ranges`.
    pub(crate) async fn serve_api_versions(&mut self, ranges: &[(i16, i16, i16)]) -> Req {
        let req = self.read_request().await.expect("ApiVersions request");
        assert_eq!(req.api_key, 18);
        let resp = api_versions_response(ranges);
        self.respond(&req, &resp).await;
        req
    }
}

pub(crate) fn api_versions_response(ranges: &[(i16, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        ranges
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

fn config() -> Arc<ConnectionConfig> {
    Arc::new(ConnectionConfig::default().with_client_id("test"))
}

/// A fake broker with one accepted, negotiated connection and the client's handle.
async fn connected(cfg: Arc<ConnectionConfig>) -> (Connection, FakeConn) {
    let fake = FakeBroker::bind().await;
    let client = tokio::spawn(Connection::connect("127.0.0.1", fake.port, cfg));
    let mut conn = fake.accept().await;
    conn.serve_api_versions(&all_ranges()).await;
    (client.await.unwrap().unwrap(), conn)
}

fn metadata_for(topic: &str) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_owned()))))]))
}

/// The topic a fake-served Metadata request asked for, echoed as the cluster id.
fn echo_topic(req: &Req) -> MetadataResponse {
    let m: MetadataRequest = req.decode();
    let topic = m.topics.unwrap()[0].name.clone().unwrap();
    MetadataResponse::default().with_cluster_id(Some(topic.0))
}

#[tokio::test]
async fn negotiates_with_client_software_and_intersects_versions() {
    let fake = FakeBroker::bind().await;
    let client = tokio::spawn(Connection::connect("127.0.0.1", fake.port, config()));
    let mut c = fake.accept().await;
    let req = c.read_request().await.unwrap();
    assert_eq!(req.api_key, 18);
    assert_eq!(req.version, ApiKey::ApiVersions.valid_versions().max);
    let r: ApiVersionsRequest = req.decode();
    assert_eq!(r.client_software_name.as_str(), "kafka-rs");
    assert_eq!(
        r.client_software_version.as_str(),
        env!("CARGO_PKG_VERSION")
    );
    c.respond(
        &req,
        &api_versions_response(&[(18, 0, 4), (1, 0, 11), (3, 0, 99)]),
    )
    .await;
    let conn = client.await.unwrap().unwrap();
    assert_eq!(conn.max_version(1), Some(11));
    assert_eq!(
        conn.max_version(3),
        Some(ApiKey::Metadata.valid_versions().max)
    );
    assert_eq!(conn.max_version(0), None);
    // An API the broker does not offer: a typed error at once, nothing sent.
    let err = conn.send(ProduceRequest::default().with_acks(-1)).await;
    assert!(
        matches!(
            err,
            Err(NetError::UnsupportedVersion {
                api_key: 0,
                broker_range: None,
                ..
            })
        ),
        "{err:?}"
    );
    let err = conn.send_at(FetchRequest::default(), 12).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::UnsupportedVersion {
                version: Some(12),
                broker_range: Some((0, 11)),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Fetch"), "{err}");
}

#[tokio::test]
async fn api_versions_falls_back_when_broker_answers_unsupported_version() {
    let fake = FakeBroker::bind().await;
    let client = tokio::spawn(Connection::connect("127.0.0.1", fake.port, config()));
    let mut c = fake.accept().await;
    let req = c.read_request().await.unwrap();
    assert!(req.version >= 3);
    // A Kafka 2.1 broker: UNSUPPORTED_VERSION, body in the v0 format, its ApiVersions range.
    let old = api_versions_response(&[(18, 0, 2)]).with_error_code(35);
    let out = FakeConn::encode_response(req.correlation_id, 18, 0, &old);
    c.write_raw(&out).await;
    let req = c.read_request().await.unwrap();
    assert_eq!((req.api_key, req.version), (18, 2));
    c.respond(
        &req,
        &api_versions_response(&[(18, 0, 2), (1, 0, 10), (0, 0, 7), (3, 0, 7)]),
    )
    .await;
    let conn = client.await.unwrap().unwrap();
    assert_eq!(conn.api_versions().api_versions_version(), 2);
    assert_eq!(conn.max_version(1), Some(10));
    assert_eq!(conn.max_version(0), Some(7));
    // And it works: Metadata v7.
    let send = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(metadata_for("t")).await }
    });
    let req = c.read_request().await.unwrap();
    assert_eq!((req.api_key, req.version), (3, 7));
    c.respond(&req, &echo_topic(&req)).await;
    assert_eq!(
        send.await.unwrap().unwrap().cluster_id.unwrap().as_str(),
        "t"
    );
}

#[tokio::test]
async fn pipelined_requests_get_their_own_responses_in_any_order() {
    let (conn, mut c) = connected(config()).await;
    let names: Vec<String> = (0..8).map(|i| format!("topic-{i}")).collect();
    let sends: Vec<_> = names
        .iter()
        .map(|n| {
            let conn = conn.clone();
            let req = metadata_for(n);
            tokio::spawn(async move { conn.send(req).await })
        })
        .collect();
    let mut reqs = Vec::new();
    for _ in 0..names.len() {
        reqs.push(c.read_request().await.unwrap());
    }
    // All eight are in flight at once.
    assert_eq!(conn.in_flight(), names.len());
    // Answer in reverse order: matching is by correlation id.
    for req in reqs.iter().rev() {
        c.respond(req, &echo_topic(req)).await;
    }
    for (name, send) in names.iter().zip(sends) {
        let resp = send.await.unwrap().unwrap();
        assert_eq!(resp.cluster_id.unwrap().as_str(), name);
    }
    assert_eq!(conn.in_flight(), 0);
    assert!(!conn.is_closed());
}

#[tokio::test]
async fn timeout_fails_the_request_and_the_late_response_is_discarded() {
    let cfg = Arc::new(ConnectionConfig::default().with_request_timeout(Duration::from_secs(30)));
    let (conn, mut c) = connected(cfg).await;
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let slow = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(metadata_for("slow")).await }
    });
    let slow_req = c.read_request().await.unwrap();
    let err = slow.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Timeout {
                api: "Metadata",
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert!(
        !conn.is_closed(),
        "a timeout does not poison the connection"
    );
    // The late response arrives, then the answer to the next request.
    c.respond(&slow_req, &echo_topic(&slow_req)).await;
    let next = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(metadata_for("next")).await }
    });
    let req = c.read_request().await.unwrap();
    c.respond(&req, &echo_topic(&req)).await;
    let resp = next.await.unwrap().unwrap();
    assert_eq!(resp.cluster_id.unwrap().as_str(), "next");
    assert!(!conn.is_closed());
}

async fn assert_poisoned(
    conn: &Connection,
    sends: Vec<tokio::task::JoinHandle<Result<MetadataResponse, NetError>>>,
) -> Arc<NetError> {
    let mut causes = Vec::new();
    for s in sends {
        match s.await.unwrap() {
            Err(NetError::Closed { cause, .. }) => causes.push(cause),
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert!(conn.is_closed());
    let cause = conn.close_cause().unwrap();
    for c in &causes {
        assert!(Arc::ptr_eq(c, &cause), "every request sees the same cause");
    }
    // Later requests fail at once with the same cause.
    match conn.send(metadata_for("later")).await {
        Err(NetError::Closed { cause: c, .. }) => assert!(Arc::ptr_eq(&c, &cause)),
        other => panic!("expected Closed, got {other:?}"),
    }
    cause
}

fn spawn_sends(
    conn: &Connection,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<MetadataResponse, NetError>>> {
    (0..n)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.send(metadata_for(&format!("t{i}"))).await })
        })
        .collect()
}

#[tokio::test]
async fn oversized_frame_poisons_every_request() {
    let (conn, mut c) = connected(config()).await;
    let sends = spawn_sends(&conn, 3);
    for _ in 0..3 {
        c.read_request().await.unwrap();
    }
    c.write_raw(&0x7fff_fff0_i32.to_be_bytes()).await;
    let cause = assert_poisoned(&conn, sends).await;
    assert!(
        matches!(*cause, NetError::Codec(CodecError::FrameTooLarge { .. })),
        "{cause}"
    );
}

#[tokio::test]
async fn unknown_correlation_id_poisons_every_request() {
    let (conn, mut c) = connected(config()).await;
    let sends = spawn_sends(&conn, 2);
    let req = c.read_request().await.unwrap();
    c.read_request().await.unwrap();
    let bogus = FakeConn::encode_response(
        req.correlation_id + 1000,
        req.api_key,
        req.version,
        &MetadataResponse::default(),
    );
    c.write_raw(&bogus).await;
    let cause = assert_poisoned(&conn, sends).await;
    assert!(
        matches!(*cause, NetError::UnknownCorrelationId { .. }),
        "{cause}"
    );
}

#[tokio::test]
async fn broker_closing_the_socket_poisons_every_request() {
    let (conn, mut c) = connected(config()).await;
    let sends = spawn_sends(&conn, 2);
    c.read_request().await.unwrap();
    c.read_request().await.unwrap();
    drop(c);
    let cause = assert_poisoned(&conn, sends).await;
    assert!(
        matches!(
            *cause,
            NetError::ClosedByBroker {
                while_connecting: false,
                ..
            } | NetError::Io { .. }
        ),
        "{cause}"
    );
}

#[tokio::test]
async fn plaintext_client_on_a_tls_listener_is_a_clear_error() {
    let fake = FakeBroker::bind().await;
    let client = tokio::spawn(Connection::connect("127.0.0.1", fake.port, config()));
    let mut c = fake.accept().await;
    // What a TLS server answers to bytes that are not a ClientHello: a fatal alert record
    // (0x15 0x03 0x03 ...), which read as a frame size claims 352 MB.
    let mut scratch = [0u8; 512];
    let _ = c.stream.read(&mut scratch).await.unwrap();
    c.write_raw(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])
        .await;
    let err = client.await.unwrap().unwrap_err();
    assert!(
        matches!(err.root_cause(), NetError::TlsExpected { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("expects TLS"), "{err}");
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn dropped_futures_never_leave_half_a_frame() {
    let (conn, mut c) = connected(config()).await;
    // Big requests (many topics) so a frame takes real writing; futures are dropped at
    // arbitrary points: before queueing, while queued, while waiting for the response.
    let topics: Vec<String> = (0..2000)
        .map(|i| format!("a-fairly-long-topic-name-{i}"))
        .collect();
    let mut cancelled = 0;
    for round in 0..40u64 {
        let req = MetadataRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect(),
        ));
        let conn2 = conn.clone();
        let fut = conn2.send(req);
        // Poll for a varying, tiny amount of time, then drop.
        if tokio::time::timeout(Duration::from_micros(round * 7), fut)
            .await
            .is_err()
        {
            cancelled += 1;
        }
    }
    assert!(cancelled > 0);
    // The connection still works: the fake answers everything that arrived (whole frames
    // only: `read_request` panics on garbage), then a final request goes through.
    let last = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(metadata_for("last")).await }
    });
    let mut big = 0;
    loop {
        let req = c.read_request().await.unwrap();
        let m: MetadataRequest = req.decode();
        let topics = m.topics.unwrap();
        if topics.len() == 1 {
            assert!(big > 0, "some cancelled requests were already queued");
            c.respond(&req, &echo_topic(&req)).await;
            break;
        }
        assert_eq!(topics.len(), 2000);
        big += 1;
        c.respond(&req, &MetadataResponse::default()).await;
    }
    assert_eq!(
        last.await.unwrap().unwrap().cluster_id.unwrap().as_str(),
        "last"
    );
    assert!(!conn.is_closed());
}

#[tokio::test]
async fn throttled_response_delays_the_next_request() {
    let (conn, mut c) = connected(config()).await;
    tokio::time::pause();
    let first = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(metadata_for("a")).await }
    });
    let req = c.read_request().await.unwrap();
    assert!(req.version >= 6, "KIP-219 semantics");
    c.respond(&req, &echo_topic(&req).with_throttle_time_ms(2_000))
        .await;
    first.await.unwrap().unwrap();
    let answered = tokio::time::Instant::now();
    assert!(conn.throttled_until().is_some());
    let second = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(metadata_for("b")).await }
    });
    let req = c.read_request().await.unwrap();
    assert!(
        answered.elapsed() >= Duration::from_millis(2_000),
        "sent after {:?}",
        answered.elapsed()
    );
    c.respond(&req, &echo_topic(&req)).await;
    second.await.unwrap().unwrap();
    assert!(conn.throttled_until().is_none());
}

#[tokio::test]
async fn acks_zero_produce_is_sent_without_waiting_for_a_response() {
    let (conn, mut c) = connected(config()).await;
    let err = conn
        .send(ProduceRequest::default().with_acks(0))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::NoResponseExpected { .. }), "{err}");
    conn.send_no_response(ProduceRequest::default().with_acks(0).with_timeout_ms(5))
        .await
        .unwrap();
    let req = c.read_request().await.unwrap();
    assert_eq!(req.api_key, 0);
    let p: ProduceRequest = req.decode();
    assert_eq!((p.acks, p.timeout_ms), (0, 5));
    assert_eq!(conn.in_flight(), 0);
    // The connection goes on normally.
    let next = tokio::spawn({
        let conn = conn.clone();
        async move { conn.send(metadata_for("n")).await }
    });
    let req = c.read_request().await.unwrap();
    c.respond(&req, &echo_topic(&req)).await;
    next.await.unwrap().unwrap();
}

#[tokio::test]
async fn connect_errors_are_typed() {
    // Nothing listens on this port (bound then released).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = Connection::connect("127.0.0.1", port, config())
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Connect { .. }), "{err}");
    assert!(err.is_retriable());
    let bad = Arc::new(ConnectionConfig::default().with_client_software("bad name", "1"));
    let err = Connection::connect("127.0.0.1", port, bad)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Config { .. }), "{err}");
}

#[tokio::test]
async fn dropping_every_handle_closes_the_socket() {
    let (conn, mut c) = connected(config()).await;
    drop(conn);
    assert!(c.read_request().await.is_none());
}

// ---- SASL against a fake broker ---------------------------------------------------------

mod sasl_fake {
    use super::*;
    use crate::net::sasl::scram::ScramHash;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;

    async fn serve_handshake(c: &mut FakeConn, mechanism: &str) {
        let req = c.read_request().await.unwrap();
        assert_eq!((req.api_key, req.version), (17, 1));
        let h: SaslHandshakeRequest = req.decode();
        assert_eq!(h.mechanism.as_str(), mechanism);
        c.respond(&req, &SaslHandshakeResponse::default()).await;
    }

    async fn read_auth(c: &mut FakeConn) -> (Req, String) {
        let req = c.read_request().await.unwrap();
        assert_eq!(req.api_key, 36);
        let a: SaslAuthenticateRequest = req.decode();
        (req, String::from_utf8(a.auth_bytes.to_vec()).unwrap())
    }

    fn auth_ok(bytes: &str, lifetime_ms: i64) -> SaslAuthenticateResponse {
        SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from(bytes.to_owned()))
            .with_session_lifetime_ms(lifetime_ms)
    }

    /// A SCRAM server that checks the client proof; `tamper` corrupts its own signature.
    async fn serve_scram(c: &mut FakeConn, hash: ScramHash, password: &str, tamper: bool) {
        serve_handshake(c, hash.mechanism()).await;
        let (req, first) = read_auth(c).await;
        let bare = first.strip_prefix("n,,").unwrap().to_owned();
        let cnonce = bare.split_once(",r=").unwrap().1.to_owned();
        let server_first = format!("r={cnonce}-srv,s={},i=4096", BASE64.encode(b"salty"));
        c.respond(&req, &auth_ok(&server_first, 0)).await;
        let (req, fin) = read_auth(c).await;
        let (without_proof, proof) = fin.split_once(",p=").unwrap();
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let salted = hash.salted_password(password.as_bytes(), b"salty", 4096);
        let client_key = hash.hmac_sign(&salted, b"Client Key");
        let client_sig = hash.hmac_sign(&hash.hash(&client_key), auth_message.as_bytes());
        let recovered: Vec<u8> = BASE64
            .decode(proof)
            .unwrap()
            .iter()
            .zip(&client_sig)
            .map(|(a, b)| a ^ b)
            .collect();
        if recovered != client_key {
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(58)
                .with_error_message(Some(StrBytes::from_static_str("invalid credentials")));
            c.respond(&req, &resp).await;
            return;
        }
        let mut sig = hash.hmac_sign(
            &hash.hmac_sign(&salted, b"Server Key"),
            auth_message.as_bytes(),
        );
        if tamper {
            sig[0] ^= 1;
        }
        c.respond(&req, &auth_ok(&format!("v={}", BASE64.encode(sig)), 0))
            .await;
    }

    async fn connect_with(
        sasl: SaslConfig,
        serve: impl for<'a> FnOnce(&'a mut FakeConn) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    ) -> (Result<Connection, NetError>, FakeConn) {
        let fake = FakeBroker::bind().await;
        let cfg = Arc::new(ConnectionConfig::default().with_sasl(sasl));
        let client = tokio::spawn(Connection::connect("127.0.0.1", fake.port, cfg));
        let mut c = fake.accept().await;
        c.serve_api_versions(&all_ranges()).await;
        serve(&mut c).await;
        (client.await.unwrap(), c)
    }

    use std::future::Future;
    use std::pin::Pin;

    #[tokio::test]
    async fn scram_sha512_and_sha256_authenticate_and_verify_the_server() {
        for hash in [ScramHash::Sha512, ScramHash::Sha256] {
            let sasl = match hash {
                ScramHash::Sha512 => SaslConfig::scram_sha512("alice", "s3cret"),
                ScramHash::Sha256 => SaslConfig::scram_sha256("alice", "s3cret"),
            };
            let (conn, _c) =
                connect_with(sasl, |c| Box::pin(serve_scram(c, hash, "s3cret", false))).await;
            conn.unwrap();
        }
    }

    #[tokio::test]
    async fn scram_with_a_wrong_server_signature_fails() {
        let (conn, _c) = connect_with(SaslConfig::scram_sha512("alice", "s3cret"), |c| {
            Box::pin(serve_scram(c, ScramHash::Sha512, "s3cret", true))
        })
        .await;
        let err = conn.unwrap_err();
        match &err {
            NetError::Sasl {
                mechanism, reason, ..
            } => {
                assert_eq!(*mechanism, "SCRAM-SHA-512");
                assert!(reason.contains("does not verify"), "{reason}");
            }
            other => panic!("expected a SASL error, got {other}"),
        }
        assert!(!err.is_retriable());
    }

    #[tokio::test]
    async fn scram_with_a_wrong_password_is_an_authentication_failure() {
        let (conn, _c) = connect_with(SaslConfig::scram_sha256("alice", "wrong"), |c| {
            Box::pin(serve_scram(c, ScramHash::Sha256, "s3cret", false))
        })
        .await;
        let err = conn.unwrap_err();
        assert!(
            matches!(
                &err,
                NetError::AuthenticationFailed { error_code: 58, message, .. } if message == "invalid credentials"
            ),
            "{err}"
        );
        assert!(!err.is_retriable());
    }

    #[tokio::test]
    async fn unsupported_mechanism_lists_what_the_broker_enables() {
        let (conn, _c) = connect_with(SaslConfig::scram_sha512("a", "b"), |c| {
            Box::pin(async move {
                let req = c.read_request().await.unwrap();
                let resp = SaslHandshakeResponse::default()
                    .with_error_code(33)
                    .with_mechanisms(vec![StrBytes::from_static_str("PLAIN")]);
                c.respond(&req, &resp).await;
            })
        })
        .await;
        let err = conn.unwrap_err();
        assert!(
            matches!(&err, NetError::UnsupportedSaslMechanism { enabled, .. } if enabled == &["PLAIN"]),
            "{err}"
        );
    }

    #[tokio::test]
    async fn oauthbearer_sends_the_provider_token() {
        let provider = || Ok(OAuthBearerToken::new("tok.en").with_extension("tenant", "t1"));
        let (conn, _c) = connect_with(SaslConfig::oauthbearer(provider), |c| {
            Box::pin(async move {
                serve_handshake(c, "OAUTHBEARER").await;
                let (req, msg) = read_auth(c).await;
                assert_eq!(msg, "n,,\x01auth=Bearer tok.en\x01tenant=t1\x01\x01");
                c.respond(&req, &auth_ok("", 0)).await;
            })
        })
        .await;
        conn.unwrap();
        // A provider error is a clear SASL error.
        let failing = || Err::<OAuthBearerToken, BoxError>("idp down".into());
        let (conn, _c) = connect_with(SaslConfig::oauthbearer(failing), |c| {
            Box::pin(serve_handshake(c, "OAUTHBEARER"))
        })
        .await;
        let err = conn.unwrap_err();
        assert!(err.to_string().contains("idp down"), "{err}");
    }

    #[tokio::test]
    async fn plain_over_plaintext_needs_the_dangerous_opt_in() {
        let cfg = Arc::new(ConnectionConfig::default().with_sasl(SaslConfig::plain("u", "p")));
        let err = Connection::connect("127.0.0.1", 1, cfg).await.unwrap_err();
        assert!(matches!(err, NetError::Config { .. }), "{err}");
    }

    async fn serve_plain(c: &mut FakeConn, lifetime_ms: i64) {
        serve_handshake(c, "PLAIN").await;
        let (req, msg) = read_auth(c).await;
        assert_eq!(msg, "\0u\0p");
        c.respond(&req, &auth_ok("", lifetime_ms)).await;
    }

    #[tokio::test]
    async fn reauthenticates_in_band_before_the_session_expires() {
        let sasl = SaslConfig::plain("u", "p").dangerous_allow_plain_without_tls();
        let (conn, mut c) = connect_with(sasl, |c| Box::pin(serve_plain(c, 1_000))).await;
        let conn = conn.unwrap();
        let authenticated = std::time::Instant::now();
        // The next thing on the wire is the re-authentication, at 85-95% of 1 s.
        let req = c.read_request().await.unwrap();
        let at = authenticated.elapsed();
        assert_eq!(req.api_key, 17, "SaslHandshake first");
        assert!(
            at >= Duration::from_millis(800) && at <= Duration::from_millis(1_000),
            "re-authenticated after {at:?}"
        );
        // A request sent during re-authentication waits until it is done.
        let during = tokio::spawn({
            let conn = conn.clone();
            async move { conn.send(metadata_for("during")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.respond(&req, &SaslHandshakeResponse::default()).await;
        let (req, msg) = read_auth(&mut c).await;
        assert_eq!(msg, "\0u\0p");
        c.respond(&req, &auth_ok("", 60_000)).await;
        let req = c.read_request().await.unwrap();
        assert_eq!(
            req.api_key, 3,
            "the held request goes after re-authentication"
        );
        c.respond(&req, &echo_topic(&req)).await;
        during.await.unwrap().unwrap();
        assert!(!conn.is_closed());
    }

    #[tokio::test]
    async fn failed_reauthentication_closes_the_connection() {
        let sasl = SaslConfig::plain("u", "p").dangerous_allow_plain_without_tls();
        let (conn, mut c) = connect_with(sasl, |c| Box::pin(serve_plain(c, 200))).await;
        let conn = conn.unwrap();
        serve_handshake(&mut c, "PLAIN").await;
        let (req, _) = read_auth(&mut c).await;
        let resp = SaslAuthenticateResponse::default()
            .with_error_code(58)
            .with_error_message(Some(StrBytes::from_static_str("revoked")));
        c.respond(&req, &resp).await;
        for _ in 0..100 {
            if conn.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let err = conn.send(metadata_for("x")).await.unwrap_err();
        assert!(
            matches!(err.root_cause(), NetError::AuthenticationFailed { .. }),
            "{err}"
        );
    }
}
