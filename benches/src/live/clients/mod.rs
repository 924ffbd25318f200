//! One module per client; [`produce`] and [`consume`] pick one by name.
//!
//! Adding a client: a file here implementing [`LiveProducer`](crate::live::driver::LiveProducer)
//! and/or [`LiveConsumer`](crate::live::driver::LiveConsumer), and one line in each `match`
//! below. The peers exist only with the `peers` feature; asked for without it they fail
//! with [`LiveError::PeerNotBuilt`].

use crate::live::args::{ConsumeSpec, ProduceSpec};
use crate::live::driver::{run_consume, run_produce};
use crate::live::report::Report;
use crate::live::LiveError;

#[cfg(feature = "peers")]
pub mod confluent;
#[cfg(feature = "peers")]
pub mod krafka;
pub mod ours;
#[cfg(feature = "peers")]
pub mod rdkafka;
#[cfg(feature = "peers")]
pub mod rskafka;

/// Every producer client, in the order `compare` runs them first.
pub const PRODUCE_CLIENTS: [&str; 6] = [
    "rdkafka",
    "ours",
    "ours-future",
    "krafka",
    "confluent-kafka",
    "rskafka",
];
/// Every consumer client, in the order `compare` runs them first.
pub const CONSUME_CLIENTS: [&str; 6] = [
    "rdkafka",
    "rdkafka-stream",
    "ours",
    "krafka",
    "confluent-kafka",
    "rskafka",
];

/// The baseline of `compare`'s ratios.
pub const BASELINE: &str = "rdkafka";

fn not_here(name: &str, known: &[&'static str]) -> LiveError {
    match known.iter().find(|k| **k == name) {
        Some(k) => LiveError::PeerNotBuilt { client: k },
        None => LiveError::UnknownClient {
            name: name.to_string(),
            known: known.join(", "),
        },
    }
}

/// Runs one produce job with the client of that name. The report comes back even when some
/// deliveries failed; the error beside it then says so.
pub async fn produce(
    client: &str,
    spec: ProduceSpec,
    bootstrap: String,
) -> Result<(Report, Option<LiveError>), LiveError> {
    match client {
        "ours" => run_produce::<ours::OursProducer>(spec, bootstrap).await,
        "ours-future" => run_produce::<ours::OursFutureProducer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "rdkafka" => run_produce::<rdkafka::RdkafkaProducer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "krafka" => run_produce::<krafka::KrafkaProducer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "confluent-kafka" => run_produce::<confluent::ConfluentProducer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "rskafka" => run_produce::<rskafka::RskafkaProducer>(spec, bootstrap).await,
        other => Err(not_here(other, &PRODUCE_CLIENTS)),
    }
}

/// Runs one consume job with the client of that name.
pub async fn consume(
    client: &str,
    spec: ConsumeSpec,
    bootstrap: String,
) -> Result<Report, LiveError> {
    match client {
        "ours" => run_consume::<ours::OursConsumer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "rdkafka" => run_consume::<rdkafka::RdkafkaBaseConsumer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "rdkafka-stream" => run_consume::<rdkafka::RdkafkaStreamConsumer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "krafka" => run_consume::<krafka::KrafkaConsumer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "confluent-kafka" => run_consume::<confluent::ConfluentConsumer>(spec, bootstrap).await,
        #[cfg(feature = "peers")]
        "rskafka" => run_consume::<rskafka::RskafkaConsumer>(spec, bootstrap).await,
        other => Err(not_here(other, &CONSUME_CLIENTS)),
    }
}
