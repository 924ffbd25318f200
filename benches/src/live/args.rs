//! The command line of `live`: hand-parsed, every bad value a typed [`LiveError`].

use std::time::Duration;

use crate::live::LiveError;

/// `live --help`.
pub const USAGE: &str = "\
usage:
  live produce --client NAME [--bootstrap HOST:PORT] --topic T --records N --size S
               [--acks all|1|0] [--compression none|lz4|zstd] [--partitions P (6)]
               [--linger-ms MS (5)] [--batch-size BYTES (1000000)] [--idempotent true|false]
               [--timeout-s SECS (300)]
  live consume --client NAME [--bootstrap HOST:PORT] --topic T --records N [--timeout-s SECS]
  live compare produce [--clients a,b,...] [--rounds R (3)] <produce options but --client>
  live compare consume [--clients a,b,...] [--rounds R (3)] [--fill-client NAME (rdkafka)]
               <consume options but --client>

Each run prints one JSON object on stdout. Without --bootstrap a local broker is started
with the repository's kit (scripts/kafka up; honours KAFKA_KIT_PORT_OFFSET) and left running
(`scripts/kafka down` stops it). --idempotent defaults to true with --acks all, else false.
produce clients: ours ours-future rdkafka krafka confluent-kafka rskafka
consume clients: ours rdkafka rdkafka-stream krafka confluent-kafka rskafka
(every client but `ours` needs the `peers` feature).";

/// `--acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no response.
    None,
    /// `acks=1`: the leader.
    Leader,
    /// `acks=all` (-1): every in-sync replica.
    All,
}

impl Acks {
    /// As in the Java config: `0`, `1`, `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4 (frame format).
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// As in `compression.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Where the broker is and how long a run may take: common to both modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// `--bootstrap`; `None`: start the kit's broker.
    pub bootstrap: Option<String>,
    /// `--topic`.
    pub topic: String,
    /// `--records`: records to produce, or to read from the beginning.
    pub records: u64,
    /// `--timeout-s`: the measured part must end within this, and a run with no progress
    /// for a tenth of it (at least 10 s) fails as stalled.
    pub timeout: Duration,
}

/// One produce run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceSpec {
    /// Broker, topic, record count.
    pub common: Common,
    /// `--size`: value bytes per record (records have no key and no headers).
    pub size: usize,
    /// `--acks`.
    pub acks: Acks,
    /// `--compression`.
    pub compression: Compression,
    /// `--partitions`: used when the topic is created.
    pub partitions: i32,
    /// `--linger-ms`.
    pub linger_ms: u64,
    /// `--batch-size`: bytes per partition batch, the same for every client.
    pub batch_size: usize,
    /// `--idempotent`.
    pub idempotent: bool,
}

/// One consume run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeSpec {
    /// Broker, topic, record count.
    pub common: Common,
}

/// What to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareMode {
    /// `compare produce`.
    Produce(ProduceSpec),
    /// `compare consume`, with the client that fills the topic when it is short.
    Consume {
        /// The consume options.
        spec: ConsumeSpec,
        /// `--fill-client`.
        fill_client: String,
        /// `--size` of the records written when filling.
        fill_size: usize,
        /// `--partitions` of the topic when it is created for filling.
        fill_partitions: i32,
    },
}

/// A whole command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `live produce`.
    Produce {
        /// `--client`.
        client: String,
        /// The run.
        spec: ProduceSpec,
    },
    /// `live consume`.
    Consume {
        /// `--client`.
        client: String,
        /// The run.
        spec: ConsumeSpec,
    },
    /// `live compare`.
    Compare {
        /// `--clients`; empty: every client of the mode.
        clients: Vec<String>,
        /// `--rounds`.
        rounds: u32,
        /// Produce or consume, with its options.
        mode: CompareMode,
    },
    /// `live --help`.
    Help,
}

/// `--name value` pairs, each used at most once; leftovers are an error.
struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, LiveError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(LiveError::Usage(format!("unexpected argument {arg:?}")));
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it.next().ok_or_else(|| {
                        LiveError::Usage(format!("option --{name} needs a value"))
                    })?;
                    (name.to_string(), v.clone())
                }
            };
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(LiveError::Usage(format!("option --{name} given twice")));
            }
            pairs.push((name, value));
        }
        Ok(Options { pairs })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.remove(i).1)
    }

    fn required(&mut self, name: &str) -> Result<String, LiveError> {
        self.take(name)
            .ok_or_else(|| LiveError::Usage(format!("missing --{name}")))
    }

    fn finish(self) -> Result<(), LiveError> {
        match self.pairs.first() {
            None => Ok(()),
            Some((name, _)) => Err(LiveError::Usage(format!("unknown option --{name}"))),
        }
    }
}

fn number<T>(option: &'static str, value: String, min: T, max: T) -> Result<T, LiveError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let parsed: T = value
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| LiveError::BadOption {
            option,
            value: value.clone(),
            reason: "not a number".into(),
        })?;
    if parsed < min || parsed > max {
        return Err(LiveError::BadOption {
            option,
            value,
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(parsed)
}

fn boolean(option: &'static str, value: String) -> Result<bool, LiveError> {
    match value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(LiveError::BadOption {
            option,
            value,
            reason: "must be true or false".into(),
        }),
    }
}

fn common(o: &mut Options, default_topic: Option<&str>) -> Result<Common, LiveError> {
    let bootstrap = o.take("bootstrap").filter(|b| !b.trim().is_empty());
    let topic = match (o.take("topic"), default_topic) {
        (Some(t), _) => t,
        (None, Some(d)) => d.to_string(),
        (None, None) => return Err(LiveError::Usage("missing --topic".into())),
    };
    if topic.is_empty()
        || topic.len() > 249
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(LiveError::BadOption {
            option: "--topic",
            value: topic,
            reason: "a Kafka topic name: 1-249 of [a-zA-Z0-9._-]".into(),
        });
    }
    let records = number("--records", o.required("records")?, 1u64, 1_000_000_000)?;
    let timeout_s = match o.take("timeout-s") {
        Some(v) => number("--timeout-s", v, 10u64, 86_400)?,
        None => 300,
    };
    Ok(Common {
        bootstrap,
        topic,
        records,
        timeout: Duration::from_secs(timeout_s),
    })
}

fn produce_spec(o: &mut Options, default_topic: Option<&str>) -> Result<ProduceSpec, LiveError> {
    let common = common(o, default_topic)?;
    let size = number("--size", o.required("size")?, 1usize, 1 << 20)?;
    let acks = match o.take("acks").as_deref() {
        None | Some("all") | Some("-1") => Acks::All,
        Some("1") => Acks::Leader,
        Some("0") => Acks::None,
        Some(other) => {
            return Err(LiveError::BadOption {
                option: "--acks",
                value: other.into(),
                reason: "must be all, 1 or 0".into(),
            })
        }
    };
    let compression = match o.take("compression").as_deref() {
        None | Some("none") => Compression::None,
        Some("lz4") => Compression::Lz4,
        Some("zstd") => Compression::Zstd,
        Some(other) => {
            return Err(LiveError::BadOption {
                option: "--compression",
                value: other.into(),
                reason: "must be none, lz4 or zstd".into(),
            })
        }
    };
    let partitions = match o.take("partitions") {
        Some(v) => number("--partitions", v, 1i32, 10_000)?,
        None => 6,
    };
    let linger_ms = match o.take("linger-ms") {
        Some(v) => number("--linger-ms", v, 0u64, 60_000)?,
        None => 5,
    };
    let batch_size = match o.take("batch-size") {
        Some(v) => number("--batch-size", v, 1024usize, 64 << 20)?,
        None => 1_000_000,
    };
    let idempotent = match o.take("idempotent") {
        Some(v) => boolean("--idempotent", v)?,
        None => acks == Acks::All,
    };
    if idempotent && acks != Acks::All {
        // The Java client's rule: idempotence needs acks=all.
        return Err(LiveError::BadOption {
            option: "--idempotent",
            value: "true".into(),
            reason: format!("idempotence needs --acks all, not {}", acks.as_str()),
        });
    }
    if size > batch_size {
        return Err(LiveError::BadOption {
            option: "--size",
            value: size.to_string(),
            reason: format!("a record must fit a batch (--batch-size {batch_size})"),
        });
    }
    Ok(ProduceSpec {
        common,
        size,
        acks,
        compression,
        partitions,
        linger_ms,
        batch_size,
        idempotent,
    })
}

fn client_name(o: &mut Options) -> Result<String, LiveError> {
    o.required("client")
}

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> Result<Command, LiveError> {
        let Some((mode, rest)) = args.split_first() else {
            return Err(LiveError::Usage("no command".into()));
        };
        match mode.as_str() {
            "-h" | "--help" | "help" => Ok(Command::Help),
            "produce" => {
                let mut o = Options::parse(rest)?;
                let client = client_name(&mut o)?;
                let spec = produce_spec(&mut o, None)?;
                o.finish()?;
                Ok(Command::Produce { client, spec })
            }
            "consume" => {
                let mut o = Options::parse(rest)?;
                let client = client_name(&mut o)?;
                let common = common(&mut o, None)?;
                o.finish()?;
                Ok(Command::Consume {
                    client,
                    spec: ConsumeSpec { common },
                })
            }
            "compare" => {
                let Some((what, rest)) = rest.split_first() else {
                    return Err(LiveError::Usage("compare what? produce or consume".into()));
                };
                let mut o = Options::parse(rest)?;
                let clients: Vec<String> = o
                    .take("clients")
                    .map(|c| {
                        c.split(',')
                            .map(str::trim)
                            .filter(|c| !c.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let rounds = match o.take("rounds") {
                    Some(v) => number("--rounds", v, 1u32, 100)?,
                    None => 3,
                };
                let default_topic = format!("live-{what}-{}", unix_millis());
                let mode = match what.as_str() {
                    "produce" => CompareMode::Produce(produce_spec(&mut o, Some(&default_topic))?),
                    "consume" => {
                        let fill_client = o.take("fill-client").unwrap_or_else(|| "rdkafka".into());
                        let fill_size = match o.take("size") {
                            Some(v) => number("--size", v, 1usize, 1 << 20)?,
                            None => 100,
                        };
                        let fill_partitions = match o.take("partitions") {
                            Some(v) => number("--partitions", v, 1i32, 10_000)?,
                            None => 6,
                        };
                        let common = common(&mut o, Some(&default_topic))?;
                        CompareMode::Consume {
                            spec: ConsumeSpec { common },
                            fill_client,
                            fill_size,
                            fill_partitions,
                        }
                    }
                    other => {
                        return Err(LiveError::Usage(format!(
                            "compare {other:?}? produce or consume"
                        )))
                    }
                };
                o.finish()?;
                Ok(Command::Compare {
                    clients,
                    rounds,
                    mode,
                })
            }
            other => Err(LiveError::Usage(format!("unknown command {other:?}"))),
        }
    }
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl ProduceSpec {
    /// The options of this run as `live produce` arguments (without `--client`), for the
    /// children of `compare`.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = self.common.to_args();
        a.extend([
            "--size".into(),
            self.size.to_string(),
            "--acks".into(),
            self.acks.as_str().into(),
            "--compression".into(),
            self.compression.as_str().into(),
            "--partitions".into(),
            self.partitions.to_string(),
            "--linger-ms".into(),
            self.linger_ms.to_string(),
            "--batch-size".into(),
            self.batch_size.to_string(),
            "--idempotent".into(),
            self.idempotent.to_string(),
        ]);
        a
    }
}

impl Common {
    /// As `live` arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(b) = &self.bootstrap {
            a.extend(["--bootstrap".into(), b.clone()]);
        }
        a.extend([
            "--topic".into(),
            self.topic.clone(),
            "--records".into(),
            self.records.to_string(),
            "--timeout-s".into(),
            self.timeout.as_secs().to_string(),
        ]);
        a
    }

    /// How long without progress counts as stalled.
    pub fn stall_after(&self) -> Duration {
        (self.timeout / 10).max(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn produce_defaults_follow_the_issue() {
        let Command::Produce { client, spec } = Command::parse(&args(
            "produce --client rdkafka --topic t --records 10 --size 100",
        ))
        .unwrap() else {
            panic!("not produce")
        };
        assert_eq!(client, "rdkafka");
        assert_eq!(spec.partitions, 6);
        assert_eq!(spec.linger_ms, 5);
        assert_eq!(spec.acks, Acks::All);
        assert!(spec.idempotent);
        assert_eq!(spec.compression, Compression::None);
        assert_eq!(spec.common.bootstrap, None);
    }

    #[test]
    fn bad_values_are_typed_errors() {
        for (line, option) in [
            (
                "produce --client x --topic t --records 10 --size 100 --acks 2",
                "--acks",
            ),
            (
                "produce --client x --topic t --records ten --size 100",
                "--records",
            ),
            (
                "produce --client x --topic t --records 0 --size 100",
                "--records",
            ),
            (
                "produce --client x --topic t --records 1 --size 100 --compression gzip",
                "--compression",
            ),
            (
                "produce --client x --topic t --records 1 --size 100 --acks 1 --idempotent true",
                "--idempotent",
            ),
            (
                "produce --client x --topic a/b --records 1 --size 100",
                "--topic",
            ),
            (
                "produce --client x --topic t --records 1 --size 100000 --batch-size 16384",
                "--size",
            ),
        ] {
            match Command::parse(&args(line)) {
                Err(LiveError::BadOption { option: o, .. }) => assert_eq!(o, option, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        for line in [
            "produce --client x --topic t --records 1",
            "produce --client x --topic t --records 1 --size 1 --bogus 1",
            "produce --client x --topic t --topic u --records 1 --size 1",
            "consume --client x --records",
            "compare fetch --records 1",
            "",
        ] {
            assert!(
                matches!(Command::parse(&args(line)), Err(LiveError::Usage(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn compare_round_trips_its_children_arguments() {
        let Command::Compare {
            clients,
            rounds,
            mode: CompareMode::Produce(spec),
        } = Command::parse(&args(
            "compare produce --clients rdkafka,ours --rounds 2 --records 5 --size 10 \
             --compression lz4 --bootstrap 127.0.0.1:9092",
        ))
        .unwrap()
        else {
            panic!("not compare produce")
        };
        assert_eq!(clients, ["rdkafka", "ours"]);
        assert_eq!(rounds, 2);
        assert!(spec.common.topic.starts_with("live-produce-"));
        let mut child = vec!["produce".to_string(), "--client".into(), "x".into()];
        child.extend(spec.to_args());
        let Command::Produce { spec: again, .. } = Command::parse(&child).unwrap() else {
            panic!("not produce")
        };
        assert_eq!(again, spec);
    }
}
