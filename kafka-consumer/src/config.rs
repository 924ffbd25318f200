//! Consumer settings: a builder validated in [`ConsumerConfigBuilder::build`], and the Java
//! property names through [`ConsumerConfig::from_properties`].

use std::time::Duration;

use kafka_core::client::{ClientConfig, Properties, CLIENT_KEYS};

use crate::error::{ConsumerError, Result};

/// What to do when a partition has no valid position (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetReset {
    /// Start at the log start offset.
    Earliest,
    /// Start at the end of the log (only records written later are read).
    Latest,
    /// Fail with [`ConsumerError::NoOffset`], and with [`ConsumerError::LogTruncation`] when
    /// records already consumed were truncated away (KIP-320); the partition then waits
    /// for the application to seek.
    None,
}

/// Which records a fetch may return (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IsolationLevel {
    /// Everything up to the high watermark, aborted transactional records included.
    ReadUncommitted,
    /// Only up to the last stable offset, aborted transactional records filtered out.
    ReadCommitted,
}

impl IsolationLevel {
    pub(crate) fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Which group protocol to use (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupProtocol {
    /// JoinGroup / SyncGroup / Heartbeat, assignment computed by the group leader.
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, assignment computed by the broker.
    Consumer,
}

/// A partition assignor of the classic protocol (`partition.assignment.strategy`). Names
/// on the wire are the Java client's, so mixed groups agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AssignorKind {
    /// `range`: per topic, consecutive partitions to members in order.
    Range,
    /// `roundrobin`: all partitions dealt round-robin over members.
    RoundRobin,
    /// `cooperative-sticky`: balanced, sticky, incremental (two-phase) rebalancing.
    CooperativeSticky,
    /// `sticky`: balanced and sticky like `cooperative-sticky`, but eager (every partition
    /// is revoked before each rejoin); Java's `StickyAssignor`.
    Sticky,
}

impl AssignorKind {
    /// The protocol name the group sees.
    pub fn protocol_name(self) -> &'static str {
        match self {
            AssignorKind::Range => "range",
            AssignorKind::RoundRobin => "roundrobin",
            AssignorKind::CooperativeSticky => "cooperative-sticky",
            AssignorKind::Sticky => "sticky",
        }
    }

    /// Parses a protocol name or the Java class name.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let short = s.rsplit('.').next().unwrap_or(s);
        match short {
            "range" | "RangeAssignor" => Some(AssignorKind::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(AssignorKind::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => {
                Some(AssignorKind::CooperativeSticky)
            }
            "sticky" | "StickyAssignor" => Some(AssignorKind::Sticky),
            _ => None,
        }
    }

    /// Whether partitions are revoked incrementally (only those that move).
    pub fn is_cooperative(self) -> bool {
        matches!(self, AssignorKind::CooperativeSticky)
    }
}

/// Consumer settings. Build with [`ConsumerConfig::builder`] or
/// [`ConsumerConfig::from_properties`].
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The cluster connection settings.
    pub client: ClientConfig,
    /// `group.id` (none: manual assignment only, no commits).
    pub group_id: Option<String>,
    /// `group.instance.id`: static membership (KIP-345).
    pub group_instance_id: Option<String>,
    /// `group.protocol`, default classic.
    pub group_protocol: GroupProtocol,
    /// `group.protocol.fallback` (ours): fall back to classic when the broker lacks KIP-848.
    /// Default false: a clear error instead.
    pub group_protocol_fallback: bool,
    /// `partition.assignment.strategy`, in preference order; default `[range,
    /// cooperative-sticky]` as the Java client.
    pub assignors: Vec<AssignorKind>,
    /// `session.timeout.ms`, default 45 s.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`, default 3 s.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`, default 5 min: also the rebalance timeout.
    pub max_poll_interval: Duration,
    /// `auto.offset.reset`, default latest.
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit`, default true (only with a group id).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`, default 5 s.
    pub auto_commit_interval: Duration,
    /// `fetch.min.bytes`, default 1.
    pub fetch_min_bytes: i32,
    /// `fetch.max.wait.ms`, default 500 ms.
    pub fetch_max_wait: Duration,
    /// `fetch.max.bytes`, default 50 MiB (capped by the memory budget).
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`, default 1 MiB.
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records`, default 500: the most records one [`poll`](crate::Consumer::poll)
    /// returns.
    pub max_poll_records: usize,
    /// `isolation.level`, default read_uncommitted.
    pub isolation_level: IsolationLevel,
    /// `client.rack`: fetch from a replica in this rack when the broker says so (KIP-392).
    pub client_rack: Option<String>,
    /// `check.crcs`, default true.
    pub check_crcs: bool,
    /// `fetch.memory.budget.bytes` (ours), default 256 MiB: the hard bound on everything the
    /// consumer buffers — fetch responses in flight, fetched data, decompressed batches.
    pub memory_budget: usize,
    /// `exclude.internal.topics`, default true: a regex subscription never matches them.
    pub exclude_internal_topics: bool,
    /// `metadata.max.age.ms` applies to regex subscriptions: how often new topics are looked
    /// for. Default 5 min.
    pub metadata_max_age: Duration,
}

impl ConsumerConfig {
    /// A builder for a consumer of the cluster `client` describes.
    pub fn builder(client: ClientConfig) -> ConsumerConfigBuilder {
        ConsumerConfigBuilder {
            config: ConsumerConfig {
                client,
                group_id: None,
                group_instance_id: None,
                group_protocol: GroupProtocol::Classic,
                group_protocol_fallback: false,
                assignors: vec![AssignorKind::Range, AssignorKind::CooperativeSticky],
                session_timeout: Duration::from_secs(45),
                heartbeat_interval: Duration::from_secs(3),
                max_poll_interval: Duration::from_secs(300),
                auto_offset_reset: OffsetReset::Latest,
                enable_auto_commit: true,
                auto_commit_interval: Duration::from_secs(5),
                fetch_min_bytes: 1,
                fetch_max_wait: Duration::from_millis(500),
                fetch_max_bytes: 50 * 1024 * 1024,
                max_partition_fetch_bytes: 1024 * 1024,
                max_poll_records: 500,
                isolation_level: IsolationLevel::ReadUncommitted,
                client_rack: None,
                check_crcs: true,
                memory_budget: 256 * 1024 * 1024,
                exclude_internal_topics: true,
                metadata_max_age: Duration::from_secs(300),
            },
        }
    }

    /// The whole configuration from Java property names: the common client keys go to
    /// [`ClientConfig::from_properties`], the consumer's own keys are read here, and any key
    /// left over is refused, naming the nearest known one.
    pub fn from_properties(mut props: Properties) -> Result<Self> {
        let client = ClientConfig::from_properties(&mut props)?;
        let mut pairs = Vec::new();
        for key in CONSUMER_KEYS {
            if let Some(v) = props.take(key) {
                pairs.push((*key, v));
            }
        }
        let known: Vec<&str> = CLIENT_KEYS.iter().chain(CONSUMER_KEYS).copied().collect();
        props.finish(&known)?;
        let age = client.metadata_max_age;
        let mut c = Self::from_pairs(client, pairs.iter().map(|(k, v)| (*k, v.as_str())))?;
        c.metadata_max_age = age;
        Ok(c)
    }

    /// Reads the consumer's own Java property names onto `client`. Unknown keys are
    /// refused, naming the nearest known key; the common client keys are accepted and
    /// ignored (they belong to `client`).
    pub fn from_pairs<'a, I>(client: ClientConfig, props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut b = ConsumerConfig::builder(client);
        for (key, value) in props {
            let v = value.trim();
            b = match key {
                "group.id" => b.group_id(v),
                "group.instance.id" => b.group_instance_id(v),
                "group.protocol" => b.group_protocol(match v.to_ascii_lowercase().as_str() {
                    "classic" => GroupProtocol::Classic,
                    "consumer" => GroupProtocol::Consumer,
                    _ => return Err(bad(key, v, "classic or consumer")),
                }),
                "group.protocol.fallback" => {
                    b.group_protocol_fallback(match v.to_ascii_lowercase().as_str() {
                        "classic" => true,
                        "none" => false,
                        _ => return Err(bad(key, v, "classic or none")),
                    })
                }
                "partition.assignment.strategy" => {
                    let mut list = Vec::new();
                    for name in v.split(',').filter(|s| !s.trim().is_empty()) {
                        list.push(AssignorKind::parse(name).ok_or_else(|| {
                            bad(key, name, "range, roundrobin, sticky or cooperative-sticky")
                        })?);
                    }
                    b.assignors(list)
                }
                "session.timeout.ms" => b.session_timeout(ms(key, v)?),
                "heartbeat.interval.ms" => b.heartbeat_interval(ms(key, v)?),
                "max.poll.interval.ms" => b.max_poll_interval(ms(key, v)?),
                "auto.offset.reset" => b.auto_offset_reset(match v.to_ascii_lowercase().as_str() {
                    "earliest" | "smallest" | "beginning" => OffsetReset::Earliest,
                    "latest" | "largest" | "end" => OffsetReset::Latest,
                    "none" | "error" => OffsetReset::None,
                    _ => return Err(bad(key, v, "earliest, latest or none")),
                }),
                "enable.auto.commit" => b.enable_auto_commit(boolean(key, v)?),
                "auto.commit.interval.ms" => b.auto_commit_interval(ms(key, v)?),
                "fetch.min.bytes" => b.fetch_min_bytes(int(key, v)?),
                "fetch.max.wait.ms" => b.fetch_max_wait(ms(key, v)?),
                "fetch.max.bytes" => b.fetch_max_bytes(int(key, v)?),
                "max.partition.fetch.bytes" => b.max_partition_fetch_bytes(int(key, v)?),
                "max.poll.records" => b.max_poll_records(int(key, v)? as usize),
                "isolation.level" => b.isolation_level(match v.to_ascii_lowercase().as_str() {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => return Err(bad(key, v, "read_uncommitted or read_committed")),
                }),
                "client.rack" => b.client_rack(v),
                "check.crcs" => b.check_crcs(boolean(key, v)?),
                "fetch.memory.budget.bytes" => b.memory_budget(int(key, v)? as usize),
                "exclude.internal.topics" => b.exclude_internal_topics(boolean(key, v)?),
                k if COMMON_KEYS.contains(&k) || CLIENT_KEYS.contains(&k) => b,
                k => {
                    return Err(ConsumerError::Config(format!(
                        "unknown property {k:?}{}",
                        nearest(k)
                            .map(|n| format!(" (did you mean {n:?}?)"))
                            .unwrap_or_default()
                    )))
                }
            };
        }
        b.build()
    }
}

/// The common client keys, parsed by kafka-core's client configuration.
const COMMON_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "security.protocol",
    "request.timeout.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "default.api.timeout.ms",
    "connections.max.idle.ms",
    "socket.connection.setup.timeout.ms",
    "ssl.ca.location",
    "ssl.truststore.location",
    "ssl.keystore.location",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
    "receive.message.max.bytes",
];

const CONSUMER_KEYS: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.protocol.fallback",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "fetch.min.bytes",
    "fetch.max.wait.ms",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "max.poll.records",
    "isolation.level",
    "client.rack",
    "check.crcs",
    "fetch.memory.budget.bytes",
    "exclude.internal.topics",
];

fn nearest(key: &str) -> Option<&'static str> {
    CONSUMER_KEYS
        .iter()
        .chain(COMMON_KEYS)
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= key.len().max(4) / 3)
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn bad(key: &str, value: &str, expected: &str) -> ConsumerError {
    ConsumerError::Config(format!("{key}={value:?}: expected {expected}"))
}

fn int(key: &str, v: &str) -> Result<i32> {
    v.parse::<i32>()
        .map_err(|_| bad(key, v, "an integer (32-bit)"))
}

fn ms(key: &str, v: &str) -> Result<Duration> {
    let n = int(key, v)?;
    if n < 0 {
        return Err(bad(key, v, "a non-negative number of milliseconds"));
    }
    Ok(Duration::from_millis(n as u64))
}

fn boolean(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, v, "true or false")),
    }
}

/// Builds a [`ConsumerConfig`]; every setter documents its key.
#[derive(Debug, Clone)]
pub struct ConsumerConfigBuilder {
    config: ConsumerConfig,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty => $field:ident) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$field = value;
            self
        }
    };
}

impl ConsumerConfigBuilder {
    /// `group.id`.
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.config.group_id = Some(id.into());
        self
    }
    /// `group.instance.id` (static membership).
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.config.group_instance_id = Some(id.into());
        self
    }
    /// `client.rack`.
    pub fn client_rack(mut self, rack: impl Into<String>) -> Self {
        let rack = rack.into();
        self.config.client_rack = (!rack.is_empty()).then_some(rack);
        self
    }
    setter!(/// `group.protocol`.
        group_protocol: GroupProtocol => group_protocol);
    setter!(/// `group.protocol.fallback=classic`.
        group_protocol_fallback: bool => group_protocol_fallback);
    setter!(/// `partition.assignment.strategy`.
        assignors: Vec<AssignorKind> => assignors);
    setter!(/// `session.timeout.ms`.
        session_timeout: Duration => session_timeout);
    setter!(/// `heartbeat.interval.ms`.
        heartbeat_interval: Duration => heartbeat_interval);
    setter!(/// `max.poll.interval.ms`.
        max_poll_interval: Duration => max_poll_interval);
    setter!(/// `auto.offset.reset`.
        auto_offset_reset: OffsetReset => auto_offset_reset);
    setter!(/// `enable.auto.commit`.
        enable_auto_commit: bool => enable_auto_commit);
    setter!(/// `auto.commit.interval.ms`.
        auto_commit_interval: Duration => auto_commit_interval);
    setter!(/// `fetch.min.bytes`.
        fetch_min_bytes: i32 => fetch_min_bytes);
    setter!(/// `fetch.max.wait.ms`.
        fetch_max_wait: Duration => fetch_max_wait);
    setter!(/// `fetch.max.bytes`.
        fetch_max_bytes: i32 => fetch_max_bytes);
    setter!(/// `max.partition.fetch.bytes`.
        max_partition_fetch_bytes: i32 => max_partition_fetch_bytes);
    setter!(/// `max.poll.records`.
        max_poll_records: usize => max_poll_records);
    setter!(/// `isolation.level`.
        isolation_level: IsolationLevel => isolation_level);
    setter!(/// `check.crcs`.
        check_crcs: bool => check_crcs);
    setter!(/// `fetch.memory.budget.bytes`.
        memory_budget: usize => memory_budget);
    setter!(/// `exclude.internal.topics`.
        exclude_internal_topics: bool => exclude_internal_topics);
    setter!(/// `metadata.max.age.ms` (regex subscriptions).
        metadata_max_age: Duration => metadata_max_age);

    /// Checks the settings against each other.
    pub fn build(self) -> Result<ConsumerConfig> {
        let c = self.config;
        let err = |m: String| Err(ConsumerError::Config(m));
        if c.group_id.as_deref() == Some("") {
            return err("group.id must not be empty".into());
        }
        if c.group_instance_id.is_some() && c.group_id.is_none() {
            return err("group.instance.id needs group.id".into());
        }
        if c.group_instance_id.as_deref() == Some("") {
            return err("group.instance.id must not be empty".into());
        }
        if c.assignors.is_empty() {
            return err("partition.assignment.strategy must name at least one assignor".into());
        }
        if c.heartbeat_interval.is_zero() || c.heartbeat_interval >= c.session_timeout {
            return err(format!(
                "heartbeat.interval.ms ({:?}) must be positive and below session.timeout.ms ({:?})",
                c.heartbeat_interval, c.session_timeout
            ));
        }
        if c.max_poll_interval < c.session_timeout.min(Duration::from_secs(1)) {
            return err("max.poll.interval.ms is too small".into());
        }
        if c.fetch_min_bytes < 0 {
            return err("fetch.min.bytes must not be negative".into());
        }
        if c.fetch_max_bytes <= 0 || c.max_partition_fetch_bytes <= 0 {
            return err("fetch.max.bytes and max.partition.fetch.bytes must be positive".into());
        }
        if c.fetch_max_wait > Duration::from_secs(3600) {
            return err("fetch.max.wait.ms is above one hour".into());
        }
        if c.fetch_max_wait >= c.client.connection.request_timeout {
            return err(format!(
                "fetch.max.wait.ms ({:?}) must be below request.timeout.ms ({:?}), or every idle fetch times out",
                c.fetch_max_wait, c.client.connection.request_timeout
            ));
        }
        if c.max_poll_records == 0 {
            return err("max.poll.records must be at least 1".into());
        }
        if c.auto_commit_interval.is_zero() && c.enable_auto_commit && c.group_id.is_some() {
            return err("auto.commit.interval.ms must be positive".into());
        }
        // The budget must hold at least one partition's fetch plus one decompressed batch
        // of that size, or nothing could ever be fetched.
        let min_budget = 2 * c.max_partition_fetch_bytes as usize + MIN_DECOMPRESS_ROOM;
        if c.memory_budget < min_budget {
            return err(format!(
                "fetch.memory.budget.bytes ({}) must be at least 2 x max.partition.fetch.bytes + 1 MiB ({min_budget})",
                c.memory_budget
            ));
        }
        Ok(c)
    }
}

/// The smallest room kept for decompressing one batch.
pub(crate) const MIN_DECOMPRESS_ROOM: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientConfig {
        ClientConfig::new(["localhost:9092"]).unwrap()
    }

    #[test]
    fn java_names_parse() {
        let c = ConsumerConfig::from_pairs(
            client(),
            [
                ("bootstrap.servers", "x:1"),
                ("group.id", "g"),
                ("auto.offset.reset", "earliest"),
                ("isolation.level", "read_committed"),
                (
                    "partition.assignment.strategy",
                    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor,range",
                ),
                ("fetch.max.wait.ms", "100"),
            ],
        )
        .unwrap();
        assert_eq!(c.group_id.as_deref(), Some("g"));
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(
            c.assignors,
            vec![AssignorKind::CooperativeSticky, AssignorKind::Range]
        );
        assert_eq!(c.fetch_max_wait, Duration::from_millis(100));
        let c = ConsumerConfig::from_pairs(
            client(),
            [(
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.StickyAssignor, roundrobin",
            )],
        )
        .unwrap();
        assert_eq!(
            c.assignors,
            vec![AssignorKind::Sticky, AssignorKind::RoundRobin]
        );
        assert_eq!(AssignorKind::parse("sticky"), Some(AssignorKind::Sticky));
        assert_eq!(AssignorKind::Sticky.protocol_name(), "sticky");
        assert!(!AssignorKind::Sticky.is_cooperative());
    }

    #[test]
    fn one_property_set_configures_client_and_consumer() {
        let props = Properties::new([
            ("bootstrap.servers", "h1:9092,h2:9092"),
            ("client.id", "c"),
            ("metadata.max.age.ms", "1000"),
            ("group.id", "g"),
            ("max.poll.records", "7"),
        ]);
        let c = ConsumerConfig::from_properties(props).unwrap();
        assert_eq!(c.client.bootstrap_servers.len(), 2);
        assert_eq!(
            (c.max_poll_records, c.metadata_max_age),
            (7, Duration::from_secs(1))
        );
        let e = ConsumerConfig::from_properties(Properties::new([
            ("bootstrap.servers", "h:1"),
            ("max.poll.record", "7"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("max.poll.records"), "{e}");
    }

    #[test]
    fn unknown_key_names_the_nearest() {
        let e = ConsumerConfig::from_pairs(client(), [("auto.offset.rest", "earliest")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto.offset.reset"), "{e}");
    }

    #[test]
    fn bad_values_and_combinations_are_refused() {
        assert!(ConsumerConfig::from_pairs(client(), [("auto.offset.reset", "sideways")]).is_err());
        assert!(ConsumerConfig::from_pairs(client(), [("fetch.min.bytes", "lots")]).is_err());
        assert!(ConsumerConfig::builder(client())
            .group_instance_id("i")
            .build()
            .is_err());
        assert!(ConsumerConfig::builder(client())
            .memory_budget(1000)
            .build()
            .is_err());
        assert!(ConsumerConfig::builder(client())
            .heartbeat_interval(Duration::from_secs(60))
            .build()
            .is_err());
    }
}
