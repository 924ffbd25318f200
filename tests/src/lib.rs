//! The broker test kit: a real Apache Kafka (KRaft mode) for integration tests and benchmarks.
//!
//! [`cluster`] starts the cluster a test binary needs through `scripts/kafka up` (once per
//! binary, on first use) and describes it from the `KEY=VALUE` file the script writes
//! (`<state>/cluster.env`): bootstrap addresses per listener, every broker with its rack,
//! TLS files and SASL credentials.
//!
//! ```no_run
//! use tests::{cluster, ClusterSpec, Listener};
//!
//! let kafka = cluster(ClusterSpec::default());
//! let bootstrap = kafka.bootstrap(); // "127.0.0.1:9092"
//! # let _ = (bootstrap, Listener::Plaintext);
//! ```
//!
//! Rules of the road:
//! - The ports are fixed (PLAINTEXT 9092.., SSL 9192.., MTLS 9292.., SASL_PLAINTEXT 9392..,
//!   SASL_SSL 9492..), so one cluster runs at a time per checkout; another checkout can run its
//!   own beside it with `KAFKA_KIT_PORT_OFFSET` (e.g. 1000) in its environment. A test binary (one file under
//!   `tests/tests/`) uses one [`ClusterSpec`]; put tests that need another spec in another
//!   file. The kit replaces a running cluster that does not fit (`up --replace`), but only
//!   once no other process holds a lease on it: each test process holds one while it lives
//!   (`up --lease-for <pid>`), so concurrent test binaries (nextest, or two engineers on
//!   one machine) that want different clusters take turns instead of breaking each other,
//!   and those that want the same cluster share it.
//! - The cluster outlives the test binary, so the next binary with the same spec starts in
//!   no time; `scripts/kafka down` stops it. Topics therefore persist between binaries:
//!   name them with [`unique_topic`].
//! - `KAFKA_BOOTSTRAP=host:port[,host:port...]` points the suite at a cluster started some
//!   other way; the kit then starts nothing and knows only the PLAINTEXT listener.
//! - `KAFKA_KIT_VERSION` picks the Kafka version of [`ClusterSpec::default`] (for example
//!   `3.9.2` to run the whole suite against the older protocol versions).
//! - When no broker can be had the kit panics with the reason and the tail of the script's
//!   output: a missing broker is a failure, never a silent skip. A broker that dies or stops
//!   answering later ends the test binary within minutes, with diagnostics (see `watch.rs`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod watch;
pub use watch::{brokers_answer, diagnostics, output_within, UNRESPONSIVE_LIMIT};

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which listeners the cluster has besides PLAINTEXT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Security {
    /// PLAINTEXT only.
    Plaintext,
    /// PLAINTEXT plus every secured listener: SSL, SSL with required client certificates
    /// (mTLS), SASL_PLAINTEXT and SASL_SSL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
    /// (`scripts/kafka up --security tls|sasl|full` all mean this.)
    Full,
}

impl Security {
    fn as_script_arg(self) -> &'static str {
        match self {
            Security::Plaintext => "plaintext",
            Security::Full => "full",
        }
    }
}

/// A listener of the test cluster, named as in `listener.security.protocol.map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Listener {
    /// `PLAINTEXT`: no TLS, no authentication. Also the inter-broker listener.
    Plaintext,
    /// `SSL`: TLS with server authentication only (verify against [`TlsFiles::ca`]).
    Ssl,
    /// `MTLS` (protocol SSL, `ssl.client.auth=required`): the client must present
    /// [`TlsFiles::client_cert`] / [`TlsFiles::client_key`].
    Mtls,
    /// `SASL_PLAINTEXT`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 without TLS.
    SaslPlaintext,
    /// `SASL_SSL`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 over TLS.
    SaslSsl,
}

impl Listener {
    /// Every listener, PLAINTEXT first.
    pub const ALL: [Listener; 5] = [
        Listener::Plaintext,
        Listener::Ssl,
        Listener::Mtls,
        Listener::SaslPlaintext,
        Listener::SaslSsl,
    ];

    /// The `security.protocol` a client uses on this listener.
    pub fn security_protocol(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::Ssl | Listener::Mtls => "SSL",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::SaslSsl => "SASL_SSL",
        }
    }

    /// The listener's name in `cluster.env` keys (`KAFKA_KIT_<NAME>`).
    fn env_name(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::Ssl => "SSL",
            Listener::Mtls => "MTLS",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.env_name())
    }
}

/// What a test binary needs from the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Number of combined broker+controller nodes, 1..=9. Broker `i` (1-based) listens on
    /// PLAINTEXT port 9091+i and sits in rack `rack-a`, `rack-b`, ...
    pub brokers: u8,
    /// Apache Kafka version, such as `4.4.0` or `3.9.2`; `None` is the script's default.
    pub version: Option<String>,
    /// Listeners besides PLAINTEXT.
    pub security: Security,
}

impl Default for ClusterSpec {
    /// One node, PLAINTEXT, version from `KAFKA_KIT_VERSION` or the script's default (4.4.0).
    fn default() -> Self {
        ClusterSpec {
            brokers: 1,
            version: std::env::var("KAFKA_KIT_VERSION")
                .ok()
                .filter(|v| !v.is_empty()),
            security: Security::Plaintext,
        }
    }
}

impl ClusterSpec {
    /// Three nodes (racks a, b, c; replication factor 3, `min.insync.replicas` 2).
    pub fn three_nodes() -> Self {
        ClusterSpec {
            brokers: 3,
            ..ClusterSpec::default()
        }
    }

    /// This spec with `n` nodes.
    pub fn with_brokers(mut self, n: u8) -> Self {
        self.brokers = n;
        self
    }

    /// This spec pinned to Kafka `version`.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// This spec with every secured listener ([`Security::Full`]).
    pub fn secured(mut self) -> Self {
        self.security = Security::Full;
        self
    }

    /// Whether `cluster` can serve a test that asked for this spec. An external cluster
    /// (`KAFKA_BOOTSTRAP`) is taken as it is.
    pub fn is_satisfied_by(&self, cluster: &Cluster) -> bool {
        if !cluster.managed {
            return true;
        }
        usize::from(self.brokers) == cluster.brokers.len()
            && self.version.as_deref().is_none_or(|v| v == cluster.version)
            && (self.security == Security::Plaintext || cluster.security == Security::Full)
    }

    fn script_args(&self) -> Vec<String> {
        let mut args = vec![
            "up".to_string(),
            "--brokers".to_string(),
            self.brokers.to_string(),
            "--security".to_string(),
            self.security.as_script_arg().to_string(),
            // A cluster that does not fit was left by an earlier test binary: replace it.
            "--replace".to_string(),
        ];
        if let Some(v) = &self.version {
            args.push("--version".to_string());
            args.push(v.clone());
        }
        args
    }
}

/// One broker of the cluster.
#[derive(Clone, Debug)]
pub struct Broker {
    /// `node.id`. For an external cluster (`KAFKA_BOOTSTRAP`) this is only the position in
    /// the bootstrap list, starting at 1.
    pub id: i32,
    /// `broker.rack`, when known.
    pub rack: Option<String>,
    /// The partition data directory (`log.dirs`), when known: `<topic>-<partition>/` lives here.
    pub data_dir: Option<PathBuf>,
    /// The broker's log file, when known.
    pub log_file: Option<PathBuf>,
    addrs: BTreeMap<Listener, String>,
}

impl Broker {
    /// `host:port` of this broker's `listener`, if the cluster has it.
    pub fn addr(&self, listener: Listener) -> Option<&str> {
        self.addrs.get(&listener).map(String::as_str)
    }
}

/// TLS key material of the test CA (PEM files).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate that signed the broker and client certificates. The broker
    /// certificate is valid for `localhost` and `127.0.0.1`.
    pub ca: PathBuf,
    /// Client certificate (PEM) for the MTLS listener.
    pub client_cert: PathBuf,
    /// Unencrypted PKCS#8 private key (PEM) of [`TlsFiles::client_cert`].
    pub client_key: PathBuf,
}

/// SASL users known to the SASL_PLAINTEXT and SASL_SSL listeners. The same user/password
/// pairs work for PLAIN (JAAS) and for both SCRAM mechanisms (created at format time).
#[derive(Clone, Debug)]
pub struct SaslCredentials {
    /// Enabled mechanisms: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub mechanisms: Vec<String>,
    /// An ordinary user.
    pub username: String,
    /// Password of [`SaslCredentials::username`].
    pub password: String,
    /// A second user (no authorizer is configured, so it has the same rights).
    pub admin_username: String,
    /// Password of [`SaslCredentials::admin_username`].
    pub admin_password: String,
}

/// A running test cluster.
#[derive(Debug)]
pub struct Cluster {
    version: String,
    security: Security,
    brokers: Vec<Broker>,
    bootstrap: BTreeMap<Listener, String>,
    tls: Option<TlsFiles>,
    sasl: Option<SaslCredentials>,
    env: BTreeMap<String, String>,
    managed: bool,
}

impl Cluster {
    /// Parses the `KEY=VALUE` lines of `cluster.env` (as written by `scripts/kafka up`).
    pub fn from_env_text(text: &str) -> Result<Cluster, String> {
        let env: BTreeMap<String, String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| {
            env.get(k)
                .cloned()
                .ok_or_else(|| format!("cluster.env has no {k}"))
        };
        let version = get("KAFKA_KIT_VERSION")?;
        let security = match get("KAFKA_KIT_SECURITY")?.as_str() {
            "plaintext" => Security::Plaintext,
            "full" => Security::Full,
            other => return Err(format!("cluster.env: unknown KAFKA_KIT_SECURITY={other}")),
        };
        let ids = get("KAFKA_KIT_NODE_IDS")?;
        let mut brokers = Vec::new();
        for id in ids.split(',') {
            let id: i32 = id
                .parse()
                .map_err(|_| format!("cluster.env: bad KAFKA_KIT_NODE_IDS={ids}"))?;
            let key = |what: &str| format!("KAFKA_KIT_NODE_{id}_{what}");
            let addrs = Listener::ALL
                .iter()
                .filter_map(|l| env.get(&key(l.env_name())).map(|a| (*l, a.clone())))
                .collect::<BTreeMap<_, _>>();
            if !addrs.contains_key(&Listener::Plaintext) {
                return Err(format!("cluster.env has no {}", key("PLAINTEXT")));
            }
            brokers.push(Broker {
                id,
                rack: env.get(&key("RACK")).cloned(),
                data_dir: env.get(&key("DATA_DIR")).map(PathBuf::from),
                log_file: env.get(&key("LOG")).map(PathBuf::from),
                addrs,
            });
        }
        let bootstrap = Listener::ALL
            .iter()
            .filter_map(|l| {
                env.get(&format!("KAFKA_KIT_{}", l.env_name()))
                    .map(|a| (*l, a.clone()))
            })
            .collect();
        let tls = match security {
            Security::Plaintext => None,
            Security::Full => Some(TlsFiles {
                ca: get("KAFKA_KIT_CA")?.into(),
                client_cert: get("KAFKA_KIT_CLIENT_CERT")?.into(),
                client_key: get("KAFKA_KIT_CLIENT_KEY")?.into(),
            }),
        };
        let sasl = match security {
            Security::Plaintext => None,
            Security::Full => Some(SaslCredentials {
                mechanisms: get("KAFKA_KIT_SASL_MECHANISMS")?
                    .split(',')
                    .map(str::to_string)
                    .collect(),
                username: get("KAFKA_KIT_SASL_USERNAME")?,
                password: get("KAFKA_KIT_SASL_PASSWORD")?,
                admin_username: get("KAFKA_KIT_SASL_ADMIN_USERNAME")?,
                admin_password: get("KAFKA_KIT_SASL_ADMIN_PASSWORD")?,
            }),
        };
        Ok(Cluster {
            version,
            security,
            brokers,
            bootstrap,
            tls,
            sasl,
            env,
            managed: true,
        })
    }

    /// A cluster the kit did not start, known only by its PLAINTEXT bootstrap list.
    pub fn external(bootstrap: &str) -> Cluster {
        let brokers = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .enumerate()
            .map(|(i, a)| Broker {
                id: i as i32 + 1,
                rack: None,
                data_dir: None,
                log_file: None,
                addrs: BTreeMap::from([(Listener::Plaintext, a.to_string())]),
            })
            .collect();
        Cluster {
            version: std::env::var("KAFKA_KIT_VERSION").unwrap_or_else(|_| "unknown".into()),
            security: Security::Plaintext,
            brokers,
            bootstrap: BTreeMap::from([(Listener::Plaintext, bootstrap.trim().to_string())]),
            tls: None,
            sasl: None,
            env: BTreeMap::new(),
            managed: false,
        }
    }

    /// The Kafka version (`4.4.0`); `unknown` for an external cluster unless
    /// `KAFKA_KIT_VERSION` says.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the version is at least `major.minor` (false when unknown).
    pub fn version_at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self.version.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(ma), Some(mi)) => (ma, mi) >= (major, minor),
            _ => false,
        }
    }

    /// Which listeners exist besides PLAINTEXT.
    pub fn security(&self) -> Security {
        self.security
    }

    /// The brokers, in `node.id` order.
    pub fn brokers(&self) -> &[Broker] {
        &self.brokers
    }

    /// The broker with `node.id` `id`.
    pub fn broker(&self, id: i32) -> Option<&Broker> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// PLAINTEXT bootstrap servers, `host:port` comma-separated (`bootstrap.servers`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap[&Listener::Plaintext]
    }

    /// Bootstrap servers of `listener`, or `None` when the cluster has no such listener.
    pub fn bootstrap_for(&self, listener: Listener) -> Option<&str> {
        self.bootstrap.get(&listener).map(String::as_str)
    }

    /// TLS files, for a [`Security::Full`] cluster.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// SASL users, for a [`Security::Full`] cluster.
    pub fn sasl(&self) -> Option<&SaslCredentials> {
        self.sasl.as_ref()
    }

    /// A raw `cluster.env` value (`KAFKA_KIT_...`), e.g. `KAFKA_KIT_CLIENT_PROPERTIES`, the
    /// directory of ready-made Java client configs.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// Whether the kit manages this cluster (false for `KAFKA_BOOTSTRAP`): only a managed
    /// cluster can have brokers stopped and started.
    pub fn is_managed(&self) -> bool {
        self.managed
    }

    /// Controlled shutdown of broker `id` (SIGTERM, waits until it has exited).
    pub fn stop_broker(&self, id: i32) {
        self.node(id, "stop");
    }

    /// Kills broker `id` (SIGKILL): no controlled shutdown, unflushed data is lost.
    pub fn kill_broker(&self, id: i32) {
        self.node(id, "kill");
    }

    /// Starts a stopped or killed broker `id` again and waits until it is ready.
    pub fn start_broker(&self, id: i32) {
        self.node(id, "start");
    }

    /// Freezes broker `id` (SIGSTOP): connections stay open, nothing answers.
    pub fn pause_broker(&self, id: i32) {
        self.node(id, "pause");
    }

    /// Thaws a paused broker `id` (SIGCONT).
    pub fn resume_broker(&self, id: i32) {
        self.node(id, "resume");
    }

    fn node(&self, id: i32, action: &str) {
        assert!(
            self.managed,
            "broker {action}: the cluster comes from KAFKA_BOOTSTRAP, the kit cannot control it"
        );
        let out = run_script(&["node", &id.to_string(), action]);
        if !out.status.success() {
            panic!(
                "scripts/kafka node {id} {action} failed:\n{}",
                output_tail(&out, 40)
            );
        }
    }

    /// Runs a Kafka command-line tool of the cluster's version through `scripts/kafka tool`
    /// (`console-producer`, `topics`, `dump-log`, ... or a main class name).
    pub fn tool(&self, name: &str, args: &[&str]) -> Output {
        let mut full = vec!["tool", name];
        full.extend_from_slice(args);
        run_script(&full)
    }

    /// Like [`Cluster::tool`], but panics unless the tool succeeds; returns its stdout.
    pub fn tool_ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.tool(name, args);
        if !out.status.success() {
            panic!(
                "scripts/kafka tool {name} {args:?} failed:\n{}",
                output_tail(&out, 40)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The repository root (`CARGO_MANIFEST_DIR/..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// `scripts/kafka`.
pub fn kafka_script() -> PathBuf {
    repo_root().join("scripts").join("kafka")
}

/// Where `scripts/kafka` keeps the cluster's state (`KAFKA_KIT_DIR`, else `<repo>/.kafka`).
fn state_dir() -> PathBuf {
    std::env::var_os("KAFKA_KIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".kafka"))
}

/// How long one `scripts/kafka` call may run: `up` may first fetch Kafka from Maven Central
/// and wait for every node; `status` only reads; anything else is a tool, a node action or
/// `down`.
fn script_limit(args: &[&str]) -> Duration {
    match args.first() {
        Some(&"up") => Duration::from_secs(1200),
        Some(&"status") => Duration::from_secs(30),
        _ => Duration::from_secs(300),
    }
}

fn run_script(args: &[&str]) -> Output {
    let script = kafka_script();
    let mut cmd = Command::new("bash");
    cmd.arg(&script).args(args).current_dir(repo_root());
    output_within(cmd, script_limit(args))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
}

fn output_tail(out: &Output, lines: usize) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn start(spec: &ClusterSpec) -> Result<Cluster, String> {
    if let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP") {
        if !bootstrap.trim().is_empty() {
            if spec.security != Security::Plaintext {
                return Err(format!(
                    "KAFKA_BOOTSTRAP={bootstrap} gives a PLAINTEXT listener only, but this test \
                     binary needs {:?} listeners; unset KAFKA_BOOTSTRAP to let the kit start one",
                    spec.security
                ));
            }
            return Ok(Cluster::external(&bootstrap));
        }
    }
    let mut args = spec.script_args();
    // Hold a lease on the cluster while this process lives: a concurrent test binary that
    // needs another spec waits for us instead of replacing the cluster under our feet.
    args.push("--lease-for".to_string());
    args.push(std::process::id().to_string());
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let out = run_script(&arg_refs);
    if !out.status.success() {
        return Err(format!(
            "`scripts/kafka {}` failed ({}); last lines of its output:\n{}",
            args.join(" "),
            out.status,
            output_tail(&out, 60)
        ));
    }
    eprintln!(
        "kafka test kit: `scripts/kafka {}` took {:.1}s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    let env_file = state_dir().join("cluster.env");
    let text = std::fs::read_to_string(&env_file)
        .map_err(|e| format!("cannot read {}: {e}", env_file.display()))?;
    let cluster = Cluster::from_env_text(&text)?;
    if !spec.is_satisfied_by(&cluster) {
        return Err(format!(
            "scripts/kafka started {} node(s) of Kafka {} ({:?}) but {spec:?} was asked for",
            cluster.brokers.len(),
            cluster.version,
            cluster.security
        ));
    }
    wait_for_full_view(&cluster, Duration::from_secs(60))?;
    Ok(cluster)
}

/// Waits until every broker lists every broker in its metadata. `up` returns once each node
/// has started, but a broker learns of the others' registration through the metadata log a
/// moment later: a test asking at once could see two brokers of three.
fn wait_for_full_view(cluster: &Cluster, limit: Duration) -> Result<(), String> {
    let want: Vec<i32> = cluster.brokers.iter().map(|b| b.id).collect();
    let deadline = std::time::Instant::now() + limit;
    loop {
        let mut missing = Vec::new();
        for b in &cluster.brokers {
            let Some(addr) = b.addr(Listener::Plaintext) else {
                continue;
            };
            match metadata_broker_ids(addr) {
                Ok(ids) if want.iter().all(|id| ids.contains(id)) => {}
                Ok(ids) => missing.push(format!("broker {} lists {ids:?}", b.id)),
                Err(e) => missing.push(format!("broker {}: {e}", b.id)),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "the brokers did not all see brokers {want:?} within {limit:?}: {}",
                missing.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

static CLUSTER: OnceLock<(ClusterSpec, Result<Cluster, String>)> = OnceLock::new();

/// The cluster this test binary runs against, started on first use (later calls return the
/// same cluster at once). Panics with the script's output when no broker can be had, and
/// when a second spec that the running cluster does not satisfy is asked for in the same
/// binary (one cluster per binary: put such tests in their own `tests/tests/*.rs` file).
pub fn cluster(spec: ClusterSpec) -> &'static Cluster {
    let (first, result) = CLUSTER.get_or_init(|| {
        let result = start(&spec);
        (spec.clone(), result)
    });
    match result {
        Ok(cluster) => {
            assert!(
                spec.is_satisfied_by(cluster),
                "this test binary already runs against {first:?}, which does not satisfy \
                 {spec:?}; one cluster per test binary: move these tests to their own file"
            );
            watch::watch(cluster);
            cluster
        }
        Err(why) => panic!("no Kafka cluster for the tests: {why}"),
    }
}

/// [`cluster`] with [`ClusterSpec::default`]: one node, PLAINTEXT.
pub fn default_cluster() -> &'static Cluster {
    cluster(ClusterSpec::default())
}

/// Every record of `topic` from the beginning, as kcat (librdkafka) reads it: one line per
/// record in kcat's `-f` `format`, nulls printed as `NULL` (`-Z`). `extra` are more kcat
/// arguments (e.g. `-X isolation.level=read_committed`). Panics, naming kcat's error, when it
/// fails.
pub fn kcat_read(bootstrap: &str, topic: &str, extra: &[&str], format: &str) -> Vec<String> {
    let mut kcat = Command::new("kcat");
    kcat.args(["-C", "-b", bootstrap, "-t", topic])
        .args(["-o", "beginning", "-e", "-q", "-Z"])
        .args(extra)
        .args(["-f", format]);
    let out =
        output_within(kcat, Duration::from_secs(120)).expect("kcat is installed by scripts/setup");
    assert!(
        out.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("kcat printed UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A topic name no other test (in this or an earlier run against the same cluster) uses:
/// `<prefix>-<pid>-<unix millis>-<counter>`.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{millis}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One entry of an ApiVersions response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The API key (0 = Produce, 1 = Fetch, 18 = ApiVersions, ...).
    pub api_key: i16,
    /// Oldest version the broker accepts.
    pub min_version: i16,
    /// Newest version the broker accepts.
    pub max_version: i16,
}

/// An ApiVersions v0 response, decoded by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiVersionsV0 {
    /// The correlation id of the response header.
    pub correlation_id: i32,
    /// The top-level error code (0 = none).
    pub error_code: i16,
    /// The supported APIs.
    pub apis: Vec<ApiVersionRange>,
}

impl ApiVersionsV0 {
    /// The version range of `api_key`, if the broker lists it.
    pub fn range(&self, api_key: i16) -> Option<ApiVersionRange> {
        self.apis.iter().copied().find(|a| a.api_key == api_key)
    }
}

/// Largest response the kit's hand-written requests accept; real ones are well under 2 KiB.
const MAX_KIT_RESPONSE: usize = 64 * 1024;

/// Sends an ApiVersions v0 request, written by hand on a plain `TcpStream`, to `addr` and
/// decodes the response: a smoke check that needs no Kafka client. v0 is the one version
/// every broker answers, even one that does not know the client's newer version.
pub fn api_versions_v0(addr: &str, correlation_id: i32) -> io::Result<ApiVersionsV0> {
    let body = round_trip(addr, 18, 0, correlation_id, &[])?;
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut r = Reader(&body);
    let correlation_id = r.i32()?;
    let error_code = r.i16()?;
    let count = r.i32()?;
    // Each entry is 6 bytes: reject counts the remaining bytes cannot hold.
    if count < 0 || count as usize > r.0.len() / 6 {
        return Err(bad(format!(
            "ApiVersions array count {count} with {} bytes left",
            r.0.len()
        )));
    }
    let mut apis = Vec::with_capacity(count as usize);
    for _ in 0..count {
        apis.push(ApiVersionRange {
            api_key: r.i16()?,
            min_version: r.i16()?,
            max_version: r.i16()?,
        });
    }
    Ok(ApiVersionsV0 {
        correlation_id,
        error_code,
        apis,
    })
}

/// The node ids of the brokers that the broker at `addr` (a PLAINTEXT listener) lists in its
/// metadata: Metadata v4, which every Kafka from 1.0 to 4.x serves, asking for no topics.
pub fn metadata_broker_ids(addr: &str) -> io::Result<Vec<i32>> {
    // Body: topics = empty array (v1+: no topics; null would be all), allow_auto_topic_creation.
    let body = round_trip(addr, 3, 4, 0x6b17, &[0, 0, 0, 0, 0])?;
    let mut r = Reader(&body);
    let _correlation_id = r.i32()?;
    let _throttle_ms = r.i32()?;
    let count = r.i32()?;
    // Each broker takes at least 14 bytes (id, two string lengths, port).
    if count < 0 || count as usize > r.0.len() / 14 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "Metadata broker count {count} with {} bytes left",
                r.0.len()
            ),
        ));
    }
    let mut ids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        ids.push(r.i32()?);
        r.skip_string()?; // host
        r.i32()?; // port
        r.skip_string()?; // rack (nullable)
    }
    Ok(ids)
}

/// One request (header v1 with the kit's client id, then `body`) and the response frame's
/// bytes, over a fresh connection with short time limits.
fn round_trip(
    addr: &str,
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    body: &[u8],
) -> io::Result<Vec<u8>> {
    let sock_addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no address {addr}")))?;
    let mut stream = TcpStream::connect_timeout(&sock_addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;

    let client_id = b"kafka-rs-test-kit";
    let mut request = Vec::new();
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&api_version.to_be_bytes());
    request.extend_from_slice(&correlation_id.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    request.extend_from_slice(body);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    stream.write_all(&frame)?;

    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > MAX_KIT_RESPONSE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("response size {size} (api key {api_key})"),
        ));
    }
    let mut response = vec![0u8; size as usize];
    stream.read_exact(&mut response)?;
    Ok(response)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        if self.0.len() < N {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "response truncated",
            ));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("split_at gave N bytes"))
    }

    fn i16(&mut self) -> io::Result<i16> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> io::Result<i32> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    /// Skips a (nullable) string: int16 length, -1 for null, then the bytes.
    fn skip_string(&mut self) -> io::Result<()> {
        let len = self.i16()?;
        let len = usize::try_from(len).unwrap_or(0);
        if self.0.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "response truncated",
            ));
        }
        self.0 = &self.0[len..];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL_ENV: &str = "\
# Written by scripts/kafka up.
KAFKA_KIT_VERSION=3.9.2
KAFKA_KIT_BROKERS=2
KAFKA_KIT_SECURITY=full
KAFKA_KIT_NODE_IDS=1,2
KAFKA_KIT_PLAINTEXT=127.0.0.1:9092,127.0.0.1:9093
KAFKA_KIT_SSL=127.0.0.1:9192,127.0.0.1:9193
KAFKA_KIT_MTLS=127.0.0.1:9292,127.0.0.1:9293
KAFKA_KIT_SASL_PLAINTEXT=127.0.0.1:9392,127.0.0.1:9393
KAFKA_KIT_SASL_SSL=127.0.0.1:9492,127.0.0.1:9493
KAFKA_KIT_NODE_1_RACK=rack-a
KAFKA_KIT_NODE_1_PLAINTEXT=127.0.0.1:9092
KAFKA_KIT_NODE_1_SSL=127.0.0.1:9192
KAFKA_KIT_NODE_1_DATA_DIR=/s/node-1/data
KAFKA_KIT_NODE_2_RACK=rack-b
KAFKA_KIT_NODE_2_PLAINTEXT=127.0.0.1:9093
KAFKA_KIT_CA=/s/certs/ca.pem
KAFKA_KIT_CLIENT_CERT=/s/certs/client.pem
KAFKA_KIT_CLIENT_KEY=/s/certs/client.key
KAFKA_KIT_SASL_MECHANISMS=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
KAFKA_KIT_SASL_USERNAME=alice
KAFKA_KIT_SASL_PASSWORD=alice-secret
KAFKA_KIT_SASL_ADMIN_USERNAME=admin
KAFKA_KIT_SASL_ADMIN_PASSWORD=a=b
";

    #[test]
    fn parses_cluster_env() {
        let c = Cluster::from_env_text(FULL_ENV).unwrap();
        assert_eq!(c.version(), "3.9.2");
        assert!(c.version_at_least(3, 9) && !c.version_at_least(4, 0));
        assert_eq!(c.security(), Security::Full);
        assert_eq!(c.bootstrap(), "127.0.0.1:9092,127.0.0.1:9093");
        assert_eq!(
            c.bootstrap_for(Listener::SaslSsl),
            Some("127.0.0.1:9492,127.0.0.1:9493")
        );
        assert_eq!(c.brokers().len(), 2);
        let b1 = c.broker(1).unwrap();
        assert_eq!(b1.rack.as_deref(), Some("rack-a"));
        assert_eq!(b1.addr(Listener::Ssl), Some("127.0.0.1:9192"));
        assert_eq!(b1.addr(Listener::Mtls), None);
        assert_eq!(b1.data_dir.as_deref(), Some(Path::new("/s/node-1/data")));
        assert_eq!(c.tls().unwrap().ca, Path::new("/s/certs/ca.pem"));
        let sasl = c.sasl().unwrap();
        assert_eq!(sasl.mechanisms.len(), 3);
        // Values are split at the first '=' only.
        assert_eq!(sasl.admin_password, "a=b");
        assert!(ClusterSpec::default()
            .with_brokers(2)
            .with_version("3.9.2")
            .is_satisfied_by(&c));
        assert!(!ClusterSpec::three_nodes().is_satisfied_by(&c));
        assert!(!ClusterSpec::default()
            .with_brokers(2)
            .with_version("4.4.0")
            .is_satisfied_by(&c));
    }

    #[test]
    fn rejects_incomplete_env() {
        let err = Cluster::from_env_text("KAFKA_KIT_VERSION=4.4.0\n").unwrap_err();
        assert!(err.contains("KAFKA_KIT_SECURITY"), "{err}");
    }

    #[test]
    fn external_cluster_from_bootstrap_list() {
        let c = Cluster::external("a:1, b:2");
        assert!(!c.is_managed());
        assert_eq!(c.brokers().len(), 2);
        assert_eq!(c.brokers()[1].addr(Listener::Plaintext), Some("b:2"));
        assert!(ClusterSpec::three_nodes().is_satisfied_by(&c));
    }

    #[test]
    fn unique_topics_differ() {
        assert_ne!(unique_topic("t"), unique_topic("t"));
    }
}
