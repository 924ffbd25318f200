//! One broker connection: a reader task, a writer task, and requests matched to responses by
//! correlation id.
//!
//! * **Writes are whole frames.** A request is encoded completely into its own buffer before
//!   anything is queued; the buffer goes to the writer task through a channel, and only that
//!   task touches the socket's write half. A caller whose future is dropped at any point
//!   leaves either nothing or one whole frame on the wire, never half of one.
//! * **Responses are matched by correlation id**, through a map of requests in flight. A
//!   caller that gave up (timeout, dropped future) leaves its entry behind, so that the late
//!   response is recognised and discarded rather than mistaken for a protocol error.
//! * **Poisoning.** A framing error, a correlation id nobody is waiting for, an I/O error or
//!   end of stream ends the connection: the first error is kept as the cause and every
//!   request in flight, and every later one, fails with [`NetError::Closed`] carrying it.
//! * **Throttling (KIP-219).** A response with `throttle_time_ms > 0` (at the versions where
//!   the broker expects the client to back off) holds back every later request on this
//!   connection until the throttle ends; the request timeout starts after that wait.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ProduceRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::codec::frame::FrameDecoder;
use crate::codec::message::{
    api_name, decode_response_body, encode_request, peek_correlation_id, split_response_header,
};
use crate::error::CodecError;
use crate::net::config::ConnectionConfig;
use crate::net::error::NetError;
use crate::net::throttle::client_throttle_ms;
use crate::net::versions::{client_range, ApiVersionsTable};

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;
/// Frames queued for the writer task before senders wait.
const WRITE_QUEUE: usize = 256;
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;

/// Anything a connection can run over: a TCP stream, or TLS on one.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}
pub(crate) type BoxStream = Box<dyn Stream>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; recover rather than propagate a poison.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a connection goes: the host and port it was asked for, and the address it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    host: String,
    port: u16,
    socket_addr: SocketAddr,
}

impl BrokerAddr {
    /// The host name (or address) the connection was opened with; also the TLS server name
    /// unless overridden.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The resolved socket address actually connected to.
    pub fn socket_addr(&self) -> SocketAddr {
        self.socket_addr
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_host_port(f, &self.host, self.port)
    }
}

fn fmt_host_port(f: &mut impl fmt::Write, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') && !host.starts_with('[') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}

fn host_port(host: &str, port: u16) -> String {
    let mut s = String::new();
    let _ = fmt_host_port(&mut s, host, port);
    s
}

/// A request waiting for its response.
struct Pending {
    api_key: i16,
    version: i16,
    tx: oneshot::Sender<Result<Bytes, NetError>>,
}

/// A whole frame for the writer task.
struct Outgoing {
    frame: Bytes,
    /// Told once the frame is written and flushed (requests without a response).
    written: Option<oneshot::Sender<()>>,
}

/// State shared by the handles, the reader and the writer.
pub(crate) struct IoState {
    broker: String,
    pending: Mutex<HashMap<i32, Pending>>,
    cause: Mutex<Option<Arc<NetError>>>,
    closed: AtomicBool,
    /// Set once ApiVersions (and SASL) are done: errors then stop hinting at security
    /// protocol mismatches.
    ready: AtomicBool,
    throttle_until: Mutex<Option<Instant>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl IoState {
    fn new(broker: String) -> Self {
        Self {
            broker,
            pending: Mutex::new(HashMap::new()),
            cause: Mutex::new(None),
            closed: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            throttle_until: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn cause(&self) -> Option<Arc<NetError>> {
        lock(&self.cause).clone()
    }

    /// The error for a request on a poisoned connection.
    fn closed_error(&self) -> NetError {
        let cause = self.cause().unwrap_or_else(|| {
            Arc::new(NetError::Io {
                broker: self.broker.clone(),
                source: io::Error::other("connection tasks ended"),
            })
        });
        NetError::Closed {
            broker: self.broker.clone(),
            cause,
        }
    }

    /// Ends the connection with `err` as the cause (the first cause wins): fails every
    /// request in flight and stops the tasks.
    pub(crate) fn poison(&self, err: NetError) {
        let cause = {
            let mut c = lock(&self.cause);
            if c.is_some() {
                return;
            }
            let cause = Arc::new(err);
            *c = Some(cause.clone());
            cause
        };
        self.closed.store(true, Ordering::Release);
        tracing::debug!(broker = %self.broker, error = %cause, "connection closed");
        let drained: Vec<Pending> = lock(&self.pending).drain().map(|(_, p)| p).collect();
        for p in drained {
            let _ = p.tx.send(Err(NetError::Closed {
                broker: self.broker.clone(),
                cause: cause.clone(),
            }));
        }
        self.abort_tasks();
    }

    fn abort_tasks(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    fn register(&self, id: i32, pending: Pending) -> Result<(), NetError> {
        let mut map = lock(&self.pending);
        // Checked under the map's lock: `poison` marks the connection closed before it
        // drains the map, so an entry is either drained or refused, never stranded.
        if self.is_closed() {
            drop(map);
            return Err(self.closed_error());
        }
        map.insert(id, pending);
        Ok(())
    }

    fn unregister(&self, id: i32) {
        lock(&self.pending).remove(&id);
    }

    fn in_flight(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Hands a response frame to its request.
    fn dispatch(&self, frame: Bytes) -> Result<(), NetError> {
        let id = peek_correlation_id(&frame)?;
        let Some(p) = lock(&self.pending).remove(&id) else {
            return Err(NetError::UnknownCorrelationId {
                broker: self.broker.clone(),
                correlation_id: id,
            });
        };
        let mut body = frame;
        split_response_header(p.api_key, p.version, &mut body)?;
        if p.tx.send(Ok(body)).is_err() {
            tracing::debug!(
                broker = %self.broker,
                correlation_id = id,
                api = api_name(p.api_key),
                "discarded the response to an abandoned request"
            );
        }
        Ok(())
    }

    fn throttle_deadline(&self) -> Option<Instant> {
        let t = *lock(&self.throttle_until);
        t.filter(|t| *t > Instant::now())
    }

    fn note_throttle(&self, ms: i32) {
        if ms <= 0 {
            return;
        }
        let until = Instant::now() + Duration::from_millis(ms as u64);
        let mut t = lock(&self.throttle_until);
        if t.is_none_or(|t| t < until) {
            *t = Some(until);
        }
    }

    async fn wait_throttle(&self) {
        if let Some(t) = self.throttle_deadline() {
            tracing::debug!(broker = %self.broker, wait = ?(t - Instant::now()), "throttled by the broker (KIP-219)");
            tokio::time::sleep_until(t).await;
        }
    }

    fn io_error(&self, e: io::Error) -> NetError {
        match crate::net::tls::map_stream_error(&self.broker, e) {
            Ok(tls) => tls,
            // TLS without close_notify, or a read cut short.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => NetError::ClosedByBroker {
                broker: self.broker.clone(),
                while_connecting: !self.ready.load(Ordering::Acquire),
            },
            Err(source) => NetError::Io {
                broker: self.broker.clone(),
                source,
            },
        }
    }
}

/// Whether `buf` starts like a TLS record (content type 20..=23, major version 3).
fn looks_like_tls(buf: &[u8]) -> bool {
    matches!(buf, [0x14..=0x17, 0x03, ..])
}

async fn read_loop(io: Arc<IoState>, mut rd: ReadHalf<BoxStream>, max_frame_size: usize) {
    let mut decoder = FrameDecoder::new(max_frame_size);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                if let Err(e) = io.dispatch(frame) {
                    io.poison(e);
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                let err = if looks_like_tls(&buf) {
                    NetError::TlsExpected {
                        broker: io.broker.clone(),
                    }
                } else {
                    NetError::Codec(e)
                };
                io.poison(err);
                return;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                let err = if looks_like_tls(&buf) {
                    NetError::TlsExpected {
                        broker: io.broker.clone(),
                    }
                } else {
                    NetError::ClosedByBroker {
                        broker: io.broker.clone(),
                        while_connecting: !io.ready.load(Ordering::Acquire),
                    }
                };
                io.poison(err);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let err = io.io_error(e);
                io.poison(err);
                return;
            }
        }
    }
}

async fn write_loop(
    io: Arc<IoState>,
    mut wr: WriteHalf<BoxStream>,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        // Frames queued before a throttled response arrived wait here too (KIP-219).
        io.wait_throttle().await;
        for m in &batch {
            if let Err(e) = wr.write_all(&m.frame).await {
                let err = io.io_error(e);
                io.poison(err);
                return;
            }
        }
        if let Err(e) = wr.flush().await {
            let err = io.io_error(e);
            io.poison(err);
            return;
        }
        for m in batch.drain(..) {
            if let Some(w) = m.written {
                let _ = w.send(());
            }
        }
    }
    // Every handle is gone.
    let _ = wr.shutdown().await;
}

/// Removes a registered request unless disarmed (its frame reached the writer's queue).
struct Unregister<'a> {
    io: &'a IoState,
    id: i32,
    armed: bool,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.io.unregister(self.id);
        }
    }
}

/// The request/response machinery, without negotiated versions (used while connecting).
pub(crate) struct Link {
    pub(crate) io: Arc<IoState>,
    pub(crate) broker: BrokerAddr,
    writer: mpsc::Sender<Outgoing>,
    next_id: AtomicI32,
    client_id: Option<StrBytes>,
    pub(crate) request_timeout: Duration,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.io.abort_tasks();
    }
}

/// A queued request waiting for its response.
pub(crate) struct InFlight {
    rx: oneshot::Receiver<Result<Bytes, NetError>>,
    id: i32,
    api_key: i16,
    version: i16,
}

/// An encoded request, correlation id still to be filled in.
pub(crate) struct Encoded {
    frame: BytesMut,
    api_key: i16,
    version: i16,
}

impl Link {
    fn start(stream: BoxStream, broker: BrokerAddr, config: &ConnectionConfig) -> Link {
        let (rd, wr) = tokio::io::split(stream);
        let io = Arc::new(IoState::new(broker.to_string()));
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let reader = tokio::spawn(read_loop(io.clone(), rd, config.max_frame_size));
        let writer = tokio::spawn(write_loop(io.clone(), wr, rx));
        lock(&io.tasks).extend([reader.abort_handle(), writer.abort_handle()]);
        Link {
            io,
            broker,
            writer: tx,
            next_id: AtomicI32::new(0),
            client_id: config.client_id.clone().map(StrBytes::from_string),
            request_timeout: config.request_timeout,
        }
    }

    pub(crate) fn encode<R: Request>(&self, req: &R, version: i16) -> Result<Encoded, NetError> {
        let mut frame = BytesMut::with_capacity(128);
        encode_request(&mut frame, 0, self.client_id.as_ref(), version, req)?;
        Ok(Encoded {
            frame,
            api_key: R::KEY,
            version,
        })
    }

    fn next_correlation_id(&self) -> i32 {
        self.next_id.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    /// Sends one encoded request and waits for its response body. The caller decides about
    /// throttling and gating.
    pub(crate) async fn roundtrip(&self, enc: Encoded) -> Result<Bytes, NetError> {
        let in_flight = self.enqueue(enc).await?;
        self.wait(in_flight).await
    }

    /// Registers the request and queues its frame; after this returns, the frame will be
    /// written whole (unless the connection dies), whatever happens to the caller.
    pub(crate) async fn enqueue(&self, enc: Encoded) -> Result<InFlight, NetError> {
        let Encoded {
            mut frame,
            api_key,
            version,
        } = enc;
        let (tx, rx) = oneshot::channel();
        let mut id = self.next_correlation_id();
        // An id still taken by an abandoned request 2^31 requests ago: take the next one.
        while lock(&self.io.pending).contains_key(&id) {
            id = self.next_correlation_id();
        }
        frame[8..12].copy_from_slice(&id.to_be_bytes());
        tracing::Span::current().record("correlation_id", id);
        self.io.register(
            id,
            Pending {
                api_key,
                version,
                tx,
            },
        )?;
        let mut guard = Unregister {
            io: &self.io,
            id,
            armed: true,
        };
        let out = Outgoing {
            frame: frame.freeze(),
            written: None,
        };
        if self.writer.send(out).await.is_err() {
            return Err(self.io.closed_error());
        }
        guard.armed = false;
        Ok(InFlight {
            rx,
            id,
            api_key,
            version,
        })
    }

    /// Waits for the response to a queued request, up to the request timeout.
    pub(crate) async fn wait(&self, f: InFlight) -> Result<Bytes, NetError> {
        match tokio::time::timeout(self.request_timeout, f.rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.io.closed_error()),
            Err(_) => {
                tracing::debug!("request timed out");
                Err(NetError::Timeout {
                    broker: self.io.broker.clone(),
                    api: api_name(f.api_key),
                    version: f.version,
                    correlation_id: f.id,
                    timeout: self.request_timeout,
                })
            }
        }
    }

    /// Typed request: encode, round trip, decode, note the throttle.
    pub(crate) async fn request<R>(&self, req: &R, version: i16) -> Result<R::Response, NetError>
    where
        R: Request,
        R::Response: 'static,
    {
        let enc = self.encode(req, version)?;
        let body = self.roundtrip(enc).await?;
        self.decode::<R>(version, body)
    }

    fn decode<R>(&self, version: i16, body: Bytes) -> Result<R::Response, NetError>
    where
        R: Request,
        R::Response: 'static,
    {
        let resp = decode_response_body::<R>(version, body)?;
        if let Some(ms) = client_throttle_ms(R::KEY, version, &resp as &dyn Any) {
            if ms > 0 {
                tracing::debug!(throttle_ms = ms, "broker throttled this client (KIP-219)");
                self.io.note_throttle(ms);
            }
        }
        Ok(resp)
    }

    /// Writes a request that gets no response; returns once it is written and flushed.
    async fn send_only(&self, enc: Encoded) -> Result<(), NetError> {
        let Encoded {
            mut frame,
            api_key,
            version,
        } = enc;
        if self.io.is_closed() {
            return Err(self.io.closed_error());
        }
        let id = self.next_correlation_id();
        frame[8..12].copy_from_slice(&id.to_be_bytes());
        tracing::Span::current().record("correlation_id", id);
        let (tx, rx) = oneshot::channel();
        let out = Outgoing {
            frame: frame.freeze(),
            written: Some(tx),
        };
        if self.writer.send(out).await.is_err() {
            return Err(self.io.closed_error());
        }
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.io.closed_error()),
            Err(_) => Err(NetError::Timeout {
                broker: self.io.broker.clone(),
                api: api_name(api_key),
                version,
                correlation_id: id,
                timeout: self.request_timeout,
            }),
        }
    }
}

/// Everything behind a [`Connection`] handle.
struct Shared {
    link: Link,
    versions: ApiVersionsTable,
    config: Arc<ConnectionConfig>,
    tls: bool,
    /// Requests take it shared while they wait for the throttle and queue their frame;
    /// re-authentication (KIP-368) takes it exclusively, so that nothing else is sent while
    /// the SASL exchange runs. Responses to earlier requests still flow meanwhile.
    pub(crate) gate: tokio::sync::RwLock<()>,
}

/// A request queued by [`Connection::enqueue_at`], waiting for its response.
pub struct PendingResponse<R> {
    conn: Connection,
    in_flight: InFlight,
    version: i16,
    _request: std::marker::PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for PendingResponse<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponse")
            .field("correlation_id", &self.in_flight.id)
            .field("api_key", &self.in_flight.api_key)
            .field("version", &self.version)
            .finish()
    }
}

impl<R> PendingResponse<R>
where
    R: Request + 'static,
    R::Response: 'static,
{
    /// Waits for the response (up to the request timeout) and decodes it.
    pub async fn response(self) -> Result<R::Response, NetError> {
        let link = &self.conn.shared.link;
        let body = link.wait(self.in_flight).await?;
        link.decode::<R>(self.version, body)
    }
}

/// A connection to one broker. Cheap to clone (a handle); `Send + Sync`; every method is
/// cancellation-safe. The connection closes when the last handle is dropped or when it is
/// poisoned (see [`Connection::is_closed`]).
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.shared.link.broker.to_string())
            .field("tls", &self.shared.tls)
            .field("closed", &self.is_closed())
            .finish()
    }
}

async fn open_tcp(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), NetError> {
    let broker = host_port(host, port);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| NetError::Connect {
            broker: broker.clone(),
            source,
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                // Requests are whole frames written at once: never wait for Nagle.
                s.set_nodelay(true).map_err(|source| NetError::Connect {
                    broker: broker.clone(),
                    source,
                })?;
                return Ok((s, addr));
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "connect attempt failed");
                last = Some(e);
            }
        }
    }
    Err(NetError::Connect {
        broker,
        source: last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "host resolved to no address")
        }),
    })
}

/// ApiVersions negotiation (KIP-35, KIP-511): ask at our highest version; a broker that does
/// not know it answers UNSUPPORTED_VERSION in the v0 format with its own range for
/// ApiVersions, and we ask again at the highest version it offers.
async fn negotiate(link: &Link, config: &ConnectionConfig) -> Result<ApiVersionsTable, NetError> {
    let mut version = ApiKey::ApiVersions.valid_versions().max;
    loop {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_string(config.client_software_name.clone()))
            .with_client_software_version(StrBytes::from_string(
                config.client_software_version.clone(),
            ));
        let span = tracing::debug_span!(
            "kafka_request",
            api = "ApiVersions",
            version,
            broker = %link.broker,
            correlation_id = tracing::field::Empty
        );
        let enc = link.encode(&req, version)?;
        let body = link.roundtrip(enc).instrument(span).await?;
        let code = match body.first_chunk::<2>() {
            Some(b) => i16::from_be_bytes(*b),
            None => {
                return Err(CodecError::Truncated {
                    what: "ApiVersions error code",
                    needed: 2 - body.len(),
                }
                .into())
            }
        };
        if code == UNSUPPORTED_VERSION && version > 0 {
            let resp = decode_response_body::<ApiVersionsRequest>(0, body)?;
            let broker_max = resp
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .map_or(0, |k| k.max_version);
            let next = broker_max.clamp(0, version - 1);
            tracing::debug!(
                broker = %link.broker,
                tried = version,
                next,
                "broker does not support this ApiVersions version; retrying"
            );
            version = next;
            continue;
        }
        let resp = link.decode::<ApiVersionsRequest>(version, body)?;
        if resp.error_code != 0 {
            return Err(NetError::ApiVersions {
                broker: link.broker.to_string(),
                error_code: resp.error_code,
            });
        }
        return Ok(ApiVersionsTable::from_response(version, &resp));
    }
}

impl Connection {
    /// Connects to `host:port`: TCP (with `TCP_NODELAY`), TLS when configured, then the
    /// ApiVersions negotiation and SASL authentication when configured.
    ///
    /// The TCP connect and TLS handshake are bounded by `connect_timeout`; each request of
    /// the setup by `request_timeout`.
    pub async fn connect(
        host: &str,
        port: u16,
        config: Arc<ConnectionConfig>,
    ) -> Result<Connection, NetError> {
        config.validate()?;
        let broker = host_port(host, port);
        let span = tracing::debug_span!("kafka_connect", broker = %broker);
        async move {
            let timeout = config.connect_timeout;
            let opened = tokio::time::timeout(timeout, async {
                let (tcp, addr) = open_tcp(host, port).await?;
                let (stream, tls) = crate::net::tls::wrap(tcp, host, &broker, &config).await?;
                Ok::<_, NetError>((stream, addr, tls))
            })
            .await
            .map_err(|_| NetError::ConnectTimeout {
                broker: broker.clone(),
                timeout,
            })??;
            let (stream, socket_addr, tls) = opened;
            let addr = BrokerAddr {
                host: host.to_owned(),
                port,
                socket_addr,
            };
            Self::establish(stream, addr, tls, config).await
        }
        .instrument(span)
        .await
    }

    /// Runs the connection setup over an open stream.
    async fn establish(
        stream: BoxStream,
        addr: BrokerAddr,
        tls: bool,
        config: Arc<ConnectionConfig>,
    ) -> Result<Connection, NetError> {
        let link = Link::start(stream, addr, &config);
        let versions = negotiate(&link, &config).await?;
        tracing::debug!(
            broker = %link.broker,
            api_versions_version = versions.api_versions_version(),
            "negotiated API versions"
        );
        let conn = Connection {
            shared: Arc::new(Shared {
                link,
                versions,
                config,
                tls,
                gate: tokio::sync::RwLock::new(()),
            }),
        };
        crate::net::sasl::authenticate_new(&conn).await?;
        conn.shared.link.io.ready.store(true, Ordering::Release);
        Ok(conn)
    }

    /// Sends `req` at the highest version both sides support and waits for its response.
    ///
    /// Fails with [`NetError::UnsupportedVersion`] (without sending) when the broker does not
    /// support the API, and with [`NetError::NoResponseExpected`] for a Produce request with
    /// `acks=0` (use [`Connection::send_no_response`]).
    pub async fn send<R>(&self, req: R) -> Result<R::Response, NetError>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        let version = self.version_for(R::KEY)?;
        self.send_at(req, version).await
    }

    /// Sends `req` at `version`, which both sides must support.
    pub async fn send_at<R>(&self, req: R, version: i16) -> Result<R::Response, NetError>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        if expects_no_response(&req) {
            return Err(NetError::NoResponseExpected {
                api: api_name(R::KEY),
            });
        }
        self.check_version(R::KEY, version)?;
        let link = &self.shared.link;
        let span = request_span(R::KEY, version, &link.broker);
        async move {
            // Encoded up front: nothing of `req` lives across an await.
            let enc = link.encode(&req, version)?;
            drop(req);
            let in_flight = {
                // The gate guards the queueing only, not the wait for the response.
                let _gate = self.shared.gate.read().await;
                link.io.wait_throttle().await;
                link.enqueue(enc).await?
            };
            let body = link.wait(in_flight).await?;
            link.decode::<R>(version, body)
        }
        .instrument(span)
        .await
    }

    /// Queues `req` at `version` and returns as soon as it holds its place in the connection's
    /// write order; [`PendingResponse::response`] then waits for the answer.
    ///
    /// Requests queued one after another by one task are written in that order, whatever
    /// happens to their responses: what an idempotent producer needs to keep several Produce
    /// requests in flight on one connection without reordering their sequence numbers
    /// (concurrent [`send`](Self::send) calls from different tasks promise no order).
    pub async fn enqueue_at<R>(&self, req: R, version: i16) -> Result<PendingResponse<R>, NetError>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        if expects_no_response(&req) {
            return Err(NetError::NoResponseExpected {
                api: api_name(R::KEY),
            });
        }
        self.check_version(R::KEY, version)?;
        let link = &self.shared.link;
        let enc = link.encode(&req, version)?;
        drop(req);
        let in_flight = {
            let _gate = self.shared.gate.read().await;
            link.io.wait_throttle().await;
            link.enqueue(enc).await?
        };
        Ok(PendingResponse {
            conn: self.clone(),
            in_flight,
            version,
            _request: std::marker::PhantomData,
        })
    }

    /// Sends a request that the broker does not answer (Produce with `acks=0`) at the highest
    /// common version; returns once the whole frame is written.
    pub async fn send_no_response<R>(&self, req: R) -> Result<(), NetError>
    where
        R: Request + 'static,
    {
        let version = self.version_for(R::KEY)?;
        self.send_no_response_at(req, version).await
    }

    /// [`Connection::send_no_response`] at an explicit version.
    pub async fn send_no_response_at<R>(&self, req: R, version: i16) -> Result<(), NetError>
    where
        R: Request + 'static,
    {
        self.check_version(R::KEY, version)?;
        let link = &self.shared.link;
        let span = request_span(R::KEY, version, &link.broker);
        async move {
            let enc = link.encode(&req, version)?;
            drop(req);
            let _gate = self.shared.gate.read().await;
            link.io.wait_throttle().await;
            link.send_only(enc).await
        }
        .instrument(span)
        .await
    }

    fn version_for(&self, api_key: i16) -> Result<i16, NetError> {
        self.shared
            .versions
            .max_version(api_key)
            .ok_or_else(|| self.unsupported(api_key, None))
    }

    fn check_version(&self, api_key: i16, version: i16) -> Result<(), NetError> {
        if self.shared.versions.supports(api_key, version) {
            Ok(())
        } else {
            Err(self.unsupported(api_key, Some(version)))
        }
    }

    fn unsupported(&self, api_key: i16, version: Option<i16>) -> NetError {
        NetError::UnsupportedVersion {
            broker: self.shared.link.broker.to_string(),
            api: api_name(api_key),
            api_key,
            version,
            broker_range: self.shared.versions.broker_range(api_key),
            client_range: client_range(api_key),
        }
    }

    /// The highest version of `api_key` both sides support, if any.
    pub fn max_version(&self, api_key: i16) -> Option<i16> {
        self.shared.versions.max_version(api_key)
    }

    /// The negotiated versions.
    pub fn api_versions(&self) -> &ApiVersionsTable {
        &self.shared.versions
    }

    /// The broker this connection goes to.
    pub fn broker_addr(&self) -> &BrokerAddr {
        &self.shared.link.broker
    }

    /// The configuration the connection was made with.
    pub fn config(&self) -> &Arc<ConnectionConfig> {
        &self.shared.config
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.shared.tls
    }

    /// Whether the connection is closed (poisoned); every request now fails with
    /// [`NetError::Closed`]. A pool should replace it.
    pub fn is_closed(&self) -> bool {
        self.shared.link.io.is_closed()
    }

    /// The error that closed the connection, if it is closed.
    pub fn close_cause(&self) -> Option<Arc<NetError>> {
        self.shared.link.io.cause()
    }

    /// Requests sent and not yet answered (including abandoned ones whose late response is
    /// still expected).
    pub fn in_flight(&self) -> usize {
        self.shared.link.io.in_flight()
    }

    /// Until when the broker asked this client to hold back (KIP-219), if that is still ahead.
    pub fn throttled_until(&self) -> Option<Instant> {
        self.shared.link.io.throttle_deadline()
    }

    /// Closes the connection now: requests in flight fail with [`NetError::Closed`].
    pub fn close(&self) {
        self.shared.link.io.poison(NetError::Io {
            broker: self.shared.link.broker.to_string(),
            source: io::Error::other("closed by the client"),
        });
    }

    pub(crate) fn link(&self) -> &Link {
        &self.shared.link
    }

    pub(crate) fn shared_gate(&self) -> &tokio::sync::RwLock<()> {
        &self.shared.gate
    }

    pub(crate) fn weak(&self) -> WeakConnection {
        WeakConnection(Arc::downgrade(&self.shared))
    }

    pub(crate) fn add_task(&self, task: AbortHandle) {
        lock(&self.shared.link.io.tasks).push(task);
    }
}

/// A handle that does not keep the connection open (for its background tasks).
#[derive(Clone)]
pub(crate) struct WeakConnection(std::sync::Weak<Shared>);

impl WeakConnection {
    pub(crate) fn upgrade(&self) -> Option<Connection> {
        self.0.upgrade().map(|shared| Connection { shared })
    }
}

fn request_span(api_key: i16, version: i16, broker: &BrokerAddr) -> tracing::Span {
    tracing::debug_span!(
        "kafka_request",
        api = api_name(api_key),
        version,
        broker = %broker,
        correlation_id = tracing::field::Empty
    )
}

/// Whether the broker will never answer `req`: only Produce with `acks=0`.
fn expects_no_response<R: Request + 'static>(req: &R) -> bool {
    R::KEY == ApiKey::Produce as i16
        && (req as &dyn Any)
            .downcast_ref::<ProduceRequest>()
            .is_some_and(|p| p.acks == 0)
}
