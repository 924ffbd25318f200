//! Producer settings, named and defaulted as in the Java client.

use std::sync::Arc;
use std::time::Duration;

use kafka_core::client::{ClientConfig, Properties, CLIENT_KEYS};
use kafka_core::codec::compression::Compression;

use crate::error::Error;
use crate::partitioner::{DefaultPartitioner, Partitioner, RoundRobinPartitioner};

/// `acks`: how many replicas must have the records before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no answer at all; records have no offset and failures go unseen.
    None,
    /// `acks=1`: the leader has written them (lost if it dies before followers copy them).
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has them. The default, required by idempotence.
    All,
}

impl Acks {
    pub(crate) fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::config(format!(
                "acks={other:?}: expected 0, 1, all or -1"
            ))),
        }
    }
}

/// Settings of a [`Producer`](crate::Producer). Start from [`ProducerConfig::new`] or
/// [`ProducerConfig::from_properties`]; [`Producer::new`](crate::Producer::new) validates.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// The cluster client's settings (bootstrap servers, TLS, SASL, timeouts, backoff).
    pub client: ClientConfig,
    /// `acks`. Default [`Acks::All`].
    pub acks: Acks,
    /// `enable.idempotence`. Default true (as in the Java client since 3.0): producer id,
    /// epoch and per-partition sequence numbers, so retries never duplicate or reorder.
    /// Requires `acks=all` and `max.in.flight.requests.per.connection` <= 5.
    pub idempotence: bool,
    /// `linger.ms`: how long a batch waits for more records before it is sent. Default 5 ms
    /// (the Java default since 4.0).
    pub linger: Duration,
    /// `batch.size`: the target size of one partition's batch, before compression.
    /// Default 16384.
    pub batch_size: usize,
    /// `max.request.size`: the largest record accepted, and the cap on a produce request's
    /// record bytes. Default 1048576.
    pub max_request_size: usize,
    /// `buffer.memory`: bytes of records waiting to be sent or acknowledged. When full, `send`
    /// waits up to `max.block.ms`. Default 32 MiB.
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` may wait for buffer space or for the topic's metadata.
    /// Default 60 s.
    pub max_block: Duration,
    /// `compression.type`. Default none.
    pub compression: Compression,
    /// `compression.gzip.level` / `compression.lz4.level` / `compression.zstd.level` (KIP-390)
    /// for the codec chosen; `None` for the codec's default.
    pub compression_level: Option<i32>,
    /// `request.timeout.ms` as sent in the Produce request (how long the broker waits for
    /// replication with acks=all) is the connection's `request.timeout.ms`.
    ///
    /// `delivery.timeout.ms`: the upper bound from `send` returning to the record's outcome,
    /// retries included. Default 120 s; must be at least `linger.ms + request.timeout.ms`.
    pub delivery_timeout: Duration,
    /// `retries`. Default `i32::MAX`: retry until `delivery.timeout.ms`.
    pub retries: u32,
    /// `max.in.flight.requests.per.connection`. Default 5.
    pub max_in_flight: usize,
    /// `transactional.id`: enables transactions (and requires idempotence). Default none.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer than this.
    /// Default 60 s.
    pub transaction_timeout: Duration,
    /// `partitioner.class` equivalent: the partitioner for records without a partition.
    /// Default [`DefaultPartitioner`] (Java's: murmur2 of the key; uniform sticky with
    /// adaptive partitioning for keyless records).
    pub partitioner: Arc<dyn Partitioner>,
    /// Where the outcomes of records sent with
    /// [`Producer::send_with_token`](crate::Producer::send_with_token) go. Default none.
    pub delivery_handler: Option<Arc<dyn DeliveryHandler>>,
}

/// Receives the outcome of every record sent with
/// [`Producer::send_with_token`](crate::Producer::send_with_token), with the token given
/// there: librdkafka's delivery report callback with its opaque, for pipelines that track
/// millions of records a second and want no allocation per record. It runs on the producer's
/// sender task, in offset order within a batch: keep it short and never block in it. A
/// handler that panics is logged and ignored.
pub trait DeliveryHandler: Send + Sync {
    /// One record's outcome.
    fn delivered(&self, result: crate::Result<crate::RecordMetadata>, token: u64);
}

impl<F> DeliveryHandler for F
where
    F: Fn(crate::Result<crate::RecordMetadata>, u64) + Send + Sync,
{
    fn delivered(&self, result: crate::Result<crate::RecordMetadata>, token: u64) {
        self(result, token)
    }
}

impl std::fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("client", &self.client)
            .field("acks", &self.acks)
            .field("idempotence", &self.idempotence)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("max_request_size", &self.max_request_size)
            .field("buffer_memory", &self.buffer_memory)
            .field("max_block", &self.max_block)
            .field("compression", &self.compression)
            .field("compression_level", &self.compression_level)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("retries", &self.retries)
            .field("max_in_flight", &self.max_in_flight)
            .field("transactional_id", &self.transactional_id)
            .field("transaction_timeout", &self.transaction_timeout)
            .field("delivery_handler", &self.delivery_handler.is_some())
            .finish_non_exhaustive()
    }
}

/// The producer keys [`ProducerConfig::from_properties`] understands besides
/// [`CLIENT_KEYS`].
pub const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "enable.idempotence",
    "linger.ms",
    "batch.size",
    "max.request.size",
    "buffer.memory",
    "max.block.ms",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "delivery.timeout.ms",
    "retries",
    "max.in.flight.requests.per.connection",
    "transactional.id",
    "transaction.timeout.ms",
    "partitioner.class",
    "partitioner.ignore.keys",
    "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms",
    "key.serializer",
    "value.serializer",
];

impl ProducerConfig {
    /// Java's defaults with these bootstrap servers.
    pub fn new<I, S>(bootstrap_servers: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::with_client(ClientConfig::new(bootstrap_servers)?))
    }

    /// Java's defaults with this client configuration.
    pub fn with_client(client: ClientConfig) -> Self {
        ProducerConfig {
            client,
            acks: Acks::All,
            idempotence: true,
            linger: Duration::from_millis(5),
            batch_size: 16384,
            max_request_size: 1_048_576,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            compression: Compression::None,
            compression_level: None,
            delivery_timeout: Duration::from_secs(120),
            retries: i32::MAX as u32,
            max_in_flight: 5,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            partitioner: Arc::new(DefaultPartitioner::default()),
            delivery_handler: None,
        }
    }

    /// Settings from Java property names: the common client keys ([`CLIENT_KEYS`]) and
    /// [`PRODUCER_KEYS`]. Unknown keys are an error naming the nearest known key.
    /// `key.serializer`/`value.serializer` are accepted only as Java's byte-array
    /// serializers (this producer takes bytes).
    pub fn from_properties(mut props: Properties) -> Result<Self, Error> {
        let client = ClientConfig::from_properties(&mut props)?;
        let mut c = Self::with_client(client);
        let explicit_idempotence = props.take_bool("enable.idempotence")?;
        if let Some(a) = props.take("acks") {
            c.acks = Acks::parse(&a)?;
        }
        if let Some(v) = props.take_millis("linger.ms")? {
            c.linger = v;
        }
        if let Some(v) = props.take_parsed("batch.size")? {
            c.batch_size = v;
        }
        if let Some(v) = props.take_parsed("max.request.size")? {
            c.max_request_size = v;
        }
        if let Some(v) = props.take_parsed("buffer.memory")? {
            c.buffer_memory = v;
        }
        if let Some(v) = props.take_millis("max.block.ms")? {
            c.max_block = v;
        }
        if let Some(v) = props.take("compression.type") {
            c.compression = v
                .parse::<Compression>()
                .map_err(|e| Error::config(format!("compression.type: {e}")))?;
        }
        for (key, codec) in [
            ("compression.gzip.level", Compression::Gzip),
            ("compression.lz4.level", Compression::Lz4),
            ("compression.zstd.level", Compression::Zstd),
        ] {
            if let Some(level) = props.take_parsed::<i32>(key)? {
                if codec == c.compression {
                    c.compression_level = Some(level);
                }
            }
        }
        if let Some(v) = props.take_millis("delivery.timeout.ms")? {
            c.delivery_timeout = v;
        }
        if let Some(v) = props.take_parsed::<i64>("retries")? {
            c.retries = v.clamp(0, i64::from(i32::MAX)) as u32;
        }
        if let Some(v) = props.take_parsed("max.in.flight.requests.per.connection")? {
            c.max_in_flight = v;
        }
        if let Some(v) = props.take("transactional.id") {
            c.transactional_id = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = props.take_millis("transaction.timeout.ms")? {
            c.transaction_timeout = v;
        }
        let mut partitioner = DefaultPartitioner::default();
        if let Some(v) = props.take_bool("partitioner.ignore.keys")? {
            partitioner.ignore_keys = v;
        }
        if let Some(v) = props.take_bool("partitioner.adaptive.partitioning.enable")? {
            partitioner.adaptive = v;
        }
        if let Some(v) = props.take_millis("partitioner.availability.timeout.ms")? {
            partitioner.availability_timeout = v;
        }
        c.partitioner = match props.take("partitioner.class").as_deref() {
            None | Some("") => Arc::new(partitioner),
            Some("org.apache.kafka.clients.producer.RoundRobinPartitioner") => {
                Arc::new(RoundRobinPartitioner::default())
            }
            Some(other) => {
                return Err(Error::config(format!(
                    "partitioner.class={other:?}: only RoundRobinPartitioner can be named; \
                     pass a custom Partitioner in code"
                )))
            }
        };
        for key in ["key.serializer", "value.serializer"] {
            if let Some(v) = props.take(key) {
                if v != "org.apache.kafka.common.serialization.ByteArraySerializer" {
                    return Err(Error::config(format!(
                        "{key}={v:?}: this producer sends bytes; serialize in the application"
                    )));
                }
            }
        }
        // Java: idempotence is on by default unless the settings conflict with it, in which
        // case it is quietly off; an explicit `true` with conflicting settings is an error.
        c.idempotence = match explicit_idempotence {
            Some(v) => v,
            None => {
                c.acks == Acks::All && c.max_in_flight <= 5 && c.retries > 0
                    || c.transactional_id.is_some()
            }
        };
        let known: Vec<&str> = CLIENT_KEYS.iter().chain(PRODUCER_KEYS).copied().collect();
        props.finish(&known)?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the combination (as `Producer::new` does).
    pub fn validate(&self) -> Result<(), Error> {
        self.client.validate()?;
        let bad = |s: String| Err(Error::config(s));
        if self.idempotence {
            if self.acks != Acks::All {
                return bad("enable.idempotence requires acks=all".into());
            }
            if self.max_in_flight > 5 {
                return bad(
                    "enable.idempotence requires max.in.flight.requests.per.connection <= 5".into(),
                );
            }
            if self.retries == 0 {
                return bad("enable.idempotence requires retries > 0".into());
            }
        }
        if self.transactional_id.is_some() && !self.idempotence {
            return bad("transactional.id requires enable.idempotence=true".into());
        }
        if self.max_in_flight == 0 {
            return bad("max.in.flight.requests.per.connection must be at least 1".into());
        }
        if self.batch_size == 0 || self.max_request_size == 0 {
            return bad("batch.size and max.request.size must be positive".into());
        }
        if self.buffer_memory == 0 {
            return bad("buffer.memory must be positive".into());
        }
        let request_timeout = self.client.connection.request_timeout;
        if self.delivery_timeout < self.linger + request_timeout {
            return bad(format!(
                "delivery.timeout.ms ({} ms) must be at least linger.ms + request.timeout.ms ({} ms)",
                self.delivery_timeout.as_millis(),
                (self.linger + request_timeout).as_millis()
            ));
        }
        if let Some(level) = self.compression_level {
            let ok = match self.compression {
                Compression::Gzip => (1..=9).contains(&level),
                Compression::Lz4 => (1..=17).contains(&level),
                Compression::Zstd => (-131072..=22).contains(&level),
                _ => false,
            };
            if !ok {
                return bad(format!(
                    "compression level {level} is not valid for {:?}",
                    self.compression
                ));
            }
        }
        if self.transaction_timeout.is_zero() {
            return bad("transaction.timeout.ms must be positive".into());
        }
        Ok(())
    }

    /// Sets `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Sets `enable.idempotence`.
    pub fn idempotence(mut self, on: bool) -> Self {
        self.idempotence = on;
        self
    }

    /// Sets `linger.ms`.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets `batch.size`.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets `max.request.size`.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets `buffer.memory`.
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets `max.block.ms`.
    pub fn max_block(mut self, max: Duration) -> Self {
        self.max_block = max;
        self
    }

    /// Sets `compression.type` with the codec's default level.
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self.compression_level = None;
        self
    }

    /// Sets `compression.type` and its level.
    pub fn compression_with_level(mut self, codec: Compression, level: i32) -> Self {
        self.compression = codec;
        self.compression_level = Some(level);
        self
    }

    /// Sets `delivery.timeout.ms`.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Sets `retries`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets `max.in.flight.requests.per.connection`.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Sets `transactional.id` (and turns idempotence on, which transactions need).
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self.idempotence = true;
        self
    }

    /// Sets `transaction.timeout.ms`.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Sets the partitioner.
    pub fn partitioner(mut self, partitioner: impl Partitioner + 'static) -> Self {
        self.partitioner = Arc::new(partitioner);
        self
    }

    /// The [`DeliveryHandler`] for records sent with
    /// [`Producer::send_with_token`](crate::Producer::send_with_token).
    pub fn delivery_handler(mut self, handler: impl DeliveryHandler + 'static) -> Self {
        self.delivery_handler = Some(Arc::new(handler));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        let mut all = vec![("bootstrap.servers", "a:9092")];
        all.extend_from_slice(pairs);
        Properties::new(all)
    }

    #[test]
    fn java_defaults() {
        let c = ProducerConfig::new(["a:9092"]).unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.idempotence);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.batch_size, 16384);
        assert_eq!(c.buffer_memory, 33_554_432);
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        assert_eq!(c.max_in_flight, 5);
        c.validate().unwrap();
    }

    #[test]
    fn from_properties_reads_java_names() {
        let c = ProducerConfig::from_properties(props(&[
            ("acks", "all"),
            ("linger.ms", "20"),
            ("batch.size", "65536"),
            ("compression.type", "zstd"),
            ("compression.zstd.level", "7"),
            ("transactional.id", "tx-1"),
            ("client.id", "svc"),
        ]))
        .unwrap();
        assert_eq!(c.linger, Duration::from_millis(20));
        assert_eq!(c.batch_size, 65536);
        assert_eq!(c.compression, Compression::Zstd);
        assert_eq!(c.compression_level, Some(7));
        assert_eq!(c.transactional_id.as_deref(), Some("tx-1"));
        assert!(c.idempotence);
        assert_eq!(c.client.connection.client_id.as_deref(), Some("svc"));
    }

    #[test]
    fn conflicting_settings_are_build_errors() {
        // acks=1 quietly turns default idempotence off, as in Java...
        let c = ProducerConfig::from_properties(props(&[("acks", "1")])).unwrap();
        assert!(!c.idempotence);
        // ...but an explicit request for both is an error.
        for bad in [
            &[("acks", "1"), ("enable.idempotence", "true")][..],
            &[
                ("max.in.flight.requests.per.connection", "6"),
                ("enable.idempotence", "true"),
            ],
            &[("transactional.id", "t"), ("enable.idempotence", "false")],
            &[("acks", "2")],
            &[("linger.ms", "-1")],
            &[("linger.msec", "5")],
            &[("delivery.timeout.ms", "1000")],
            &[("compression.type", "brotli")],
            &[
                ("compression.type", "gzip"),
                ("compression.gzip.level", "12"),
            ],
            &[(
                "value.serializer",
                "org.apache.kafka.common.serialization.StringSerializer",
            )],
        ] {
            let e = ProducerConfig::from_properties(props(bad));
            assert!(e.is_err(), "{bad:?} should be refused");
        }
        let e = ProducerConfig::from_properties(props(&[("linger.msec", "5")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linger.ms"), "{e}");
    }
}
