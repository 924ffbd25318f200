//! The two traits every client implements, and the runs around them.
//!
//! A client file implements [`LiveProducer`] and/or [`LiveConsumer`]; the driver does the
//! rest the same way for every client: broker and topic setup, warm-up, the measured part
//! (wall time and process CPU time around it), latency quantiles, the JSON report.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use crate::live::args::{ConsumeSpec, ProduceSpec};
use crate::live::measure::{self, AckLog, Progress};
use crate::live::report::Report;
use crate::live::{setup, LiveError};

/// What a producer client is told: the spec, the resolved bootstrap and the partition count.
#[derive(Debug, Clone)]
pub struct ProduceJob {
    /// The run's options.
    pub spec: ProduceSpec,
    /// The broker address (resolved: never the kit's "start one").
    pub bootstrap: String,
    /// Partitions the topic has.
    pub partitions: i32,
    /// The value every record carries.
    pub payload: Bytes,
}

/// What a consumer client is told.
#[derive(Debug, Clone)]
pub struct ConsumeJob {
    /// The run's options.
    pub spec: ConsumeSpec,
    /// The broker address.
    pub bootstrap: String,
    /// Partitions the topic has.
    pub partitions: i32,
}

/// What a consume run read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Records handed to the application.
    pub records: u64,
    /// Their value bytes (every value is touched: its length is summed).
    pub value_bytes: u64,
}

/// A producer under test.
///
/// `connect` builds the client with the job's settings (acks, idempotence, linger, batch
/// size, compression) and does what the client needs before it can send; `produce` sends
/// `count` keyless records with the job's payload and returns once every one has an
/// outcome, logging each ack's latency (from the start of its send call to its ack) in
/// `acks`. The driver calls `produce` once to warm up, then once measured.
#[allow(async_fn_in_trait)]
pub trait LiveProducer: Sized {
    /// The client's name (`--client`).
    const NAME: &'static str;
    /// Whether this client can run at all in this build; checked before any broker work.
    fn ready() -> Result<(), LiveError> {
        Ok(())
    }
    /// Builds the client.
    async fn connect(job: &ProduceJob) -> Result<Self, LiveError>;
    /// Settings of the job this client cannot apply, said in the report's `note`.
    fn note(_job: &ProduceJob) -> Option<String> {
        None
    }
    /// The client library's version, for the report.
    fn version() -> String;
    /// Sends `count` records and waits for all their outcomes.
    async fn produce(
        &mut self,
        job: &ProduceJob,
        count: u64,
        acks: &Arc<AckLog>,
    ) -> Result<(), LiveError>;
    /// Closes the client (not measured).
    async fn close(self) -> Result<(), LiveError>;
}

/// A consumer under test.
///
/// `connect` builds the client (no group: it reads assigned partitions); `consume` reads
/// `job.spec.common.records` records from the beginning of every partition, touching each
/// value, calling `progress.check` now and then so that a stalled client fails the run.
#[allow(async_fn_in_trait)]
pub trait LiveConsumer: Sized {
    /// The client's name (`--client`).
    const NAME: &'static str;
    /// Whether this client can run at all in this build; checked before any broker work.
    fn ready() -> Result<(), LiveError> {
        Ok(())
    }
    /// Builds the client.
    async fn connect(job: &ConsumeJob) -> Result<Self, LiveError>;
    /// What the report's `note` should say about this client.
    fn note(_job: &ConsumeJob) -> Option<String> {
        None
    }
    /// The client library's version, for the report.
    fn version() -> String;
    /// Reads the job's records from the beginning.
    async fn consume(
        &mut self,
        job: &ConsumeJob,
        progress: &mut Progress,
    ) -> Result<Consumed, LiveError>;
    /// Closes the client (not measured).
    async fn close(self) -> Result<(), LiveError>;
}

/// Records sent to warm a producer up: a few per partition, so that every leader
/// connection, metadata entry and producer id exists before the clock starts.
fn warm_up_records(partitions: i32) -> u64 {
    (partitions as u64 * 20).max(100)
}

/// Runs one produce job with client `P`; the report is complete even when deliveries
/// failed (then the error comes back beside it).
pub async fn run_produce<P: LiveProducer>(
    spec: ProduceSpec,
    bootstrap: String,
) -> Result<(Report, Option<LiveError>), LiveError> {
    P::ready()?;
    let admin = setup::connect(&bootstrap).await?;
    let partitions = setup::ensure_topic(&admin, &spec.common.topic, spec.partitions).await?;
    admin.close();
    let job = ProduceJob {
        payload: measure::payload(spec.size),
        spec,
        bootstrap,
        partitions,
    };
    let records = job.spec.common.records;
    let mut client = P::connect(&job).await?;

    let warm = Arc::new(AckLog::with_capacity(warm_up_records(partitions)));
    with_timeout::<P>(
        job.spec.common.timeout,
        client.produce(&job, warm_up_records(partitions), &warm),
    )
    .await?;
    if warm.failed() > 0 {
        return Err(LiveError::DeliveryFailed {
            client: P::NAME,
            failed: warm.failed(),
            total: warm_up_records(partitions),
            first: warm.first_error().unwrap_or_default(),
        });
    }

    let acks = Arc::new(AckLog::with_capacity(records));
    let cpu0 = measure::process_cpu_time()?;
    let t0 = Instant::now();
    with_timeout::<P>(
        job.spec.common.timeout,
        client.produce(&job, records, &acks),
    )
    .await?;
    let elapsed = t0.elapsed();
    let cpu = measure::process_cpu_time()? - cpu0;
    let peak = measure::peak_rss_mib()?;
    client.close().await?;

    let spec = &job.spec;
    let mut r = Report::new();
    r.set("mode", "produce")
        .set("client", P::NAME)
        .set("client_version", P::version())
        .set("records", records)
        .set("size", spec.size as u64)
        .set("partitions", partitions as u64)
        .set("acks", spec.acks.as_str())
        .set("idempotent", spec.idempotent)
        .set("compression", spec.compression.as_str())
        .set("linger_ms", spec.linger_ms)
        .set("batch_size", spec.batch_size as u64);
    rates(
        &mut r,
        records,
        (records * spec.size as u64) as f64,
        elapsed,
        cpu,
    );
    r.set("p50_ms", acks.quantile_ms(0.50))
        .set("p99_ms", acks.quantile_ms(0.99))
        .set("max_ms", acks.quantile_ms(1.0))
        .set("acked", acks.acked())
        .set("failed", acks.failed())
        .set("peak_rss_mb", peak)
        .set("topic", spec.common.topic.as_str())
        .set("note", P::note(&job));
    let failure =
        (acks.failed() > 0 || acks.acked() != records).then(|| LiveError::DeliveryFailed {
            client: P::NAME,
            failed: records - acks.acked().min(records),
            total: records,
            first: acks
                .first_error()
                .unwrap_or_else(|| format!("{} acks for {records} records", acks.acked())),
        });
    Ok((r, failure))
}

/// Runs one consume job with client `C`.
pub async fn run_consume<C: LiveConsumer>(
    spec: ConsumeSpec,
    bootstrap: String,
) -> Result<Report, LiveError> {
    C::ready()?;
    let admin = setup::connect(&bootstrap).await?;
    let partitions = setup::partition_count(&admin, &spec.common.topic).await?;
    let have = setup::record_count(&admin, &spec.common.topic).await?;
    admin.close();
    if have < spec.common.records {
        return Err(LiveError::TopicTooSmall {
            topic: spec.common.topic.clone(),
            have,
            need: spec.common.records,
        });
    }
    let job = ConsumeJob {
        spec,
        bootstrap,
        partitions,
    };
    let records = job.spec.common.records;
    let mut client = C::connect(&job).await?;
    let mut progress = Progress::new(
        C::NAME,
        records,
        job.spec.common.timeout,
        job.spec.common.stall_after(),
    );
    let cpu0 = measure::process_cpu_time()?;
    let t0 = Instant::now();
    let got = client.consume(&job, &mut progress).await?;
    let elapsed = t0.elapsed();
    let cpu = measure::process_cpu_time()? - cpu0;
    let peak = measure::peak_rss_mib()?;
    client.close().await?;
    if got.records != records {
        return Err(LiveError::Client {
            client: C::NAME,
            message: format!("read {} records, {records} asked for", got.records),
        });
    }
    let mut r = Report::new();
    r.set("mode", "consume")
        .set("client", C::NAME)
        .set("client_version", C::version())
        .set("records", records)
        .set(
            "size",
            (got.value_bytes as f64 / records as f64).round() as u64,
        )
        .set("partitions", partitions as u64);
    rates(&mut r, records, got.value_bytes as f64, elapsed, cpu);
    r.set("peak_rss_mb", peak)
        .set("topic", job.spec.common.topic.as_str())
        .set("note", C::note(&job));
    Ok(r)
}

fn rates(r: &mut Report, records: u64, bytes: f64, elapsed: Duration, cpu: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    r.set("elapsed_s", secs)
        .set("records_per_sec", records as f64 / secs)
        .set("mb_per_sec", bytes / 1e6 / secs)
        .set("cpu_s", cpu.as_secs_f64())
        .set("cpu_ns_per_record", cpu.as_nanos() as f64 / records as f64)
        .set("cpu_cores", cpu.as_secs_f64() / secs);
}

async fn with_timeout<P: LiveProducer>(
    limit: Duration,
    run: impl Future<Output = Result<(), LiveError>>,
) -> Result<(), LiveError> {
    match tokio::time::timeout(limit, run).await {
        Ok(r) => r,
        Err(_) => Err(LiveError::Client {
            client: P::NAME,
            message: format!(
                "produce did not finish within --timeout-s {}",
                limit.as_secs()
            ),
        }),
    }
}

/// For async clients whose send gives a future per record: logs each one's ack latency
/// as it completes, in a task of its own so that the sending loop never waits for acks
/// (it waits only where the client applies back-pressure).
pub struct AckCollector<F> {
    tx: mpsc::UnboundedSender<(Instant, F)>,
    task: tokio::task::JoinHandle<()>,
}

impl<F, T, E> AckCollector<F>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    E: std::fmt::Display,
    T: Send + 'static,
{
    /// Starts the collecting task, logging into `acks`.
    pub fn start(acks: Arc<AckLog>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, F)>();
        let task = tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            let mut open = true;
            while open || !pending.is_empty() {
                tokio::select! {
                    biased;
                    Some((sent, result)) = pending.next(), if !pending.is_empty() => {
                        let sent: Instant = sent;
                        match result {
                            Ok(_) => acks.ack(sent.elapsed()),
                            Err(e) => acks.fail(e),
                        }
                    }
                    msg = rx.recv(), if open => match msg {
                        Some((sent, ack)) => pending.push(async move { (sent, ack.await) }),
                        None => open = false,
                    },
                }
            }
        });
        AckCollector { tx, task }
    }

    /// Hands over the ack future of a record whose send began at `sent`.
    pub fn push(&self, sent: Instant, ack: F) {
        // The task only ends after the sender is dropped (in `finish`).
        let _ = self.tx.send((sent, ack));
    }

    /// Waits until every handed-over ack has an outcome.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}
