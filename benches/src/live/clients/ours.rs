//! Our own clients: `kafka-producer` (issue 4) and `kafka-consumer` (issue 5).
//!
//! Not wired yet: neither crate has its API yet. Wiring one is this file only: build the
//! producer in `connect` from the job (acks, idempotence, `linger.ms`, `batch.size`,
//! compression), and in `produce` push each record's delivery future into an
//! [`AckCollector`](crate::live::driver::AckCollector) with the instant its send began (see
//! `krafka.rs` for the shape); the consumer assigns every partition from the beginning and
//! counts records and value bytes until it has `job.spec.common.records`.

use std::sync::Arc;

use crate::live::driver::{ConsumeJob, Consumed, LiveConsumer, LiveProducer, ProduceJob};
use crate::live::measure::{AckLog, Progress};
use crate::live::LiveError;

const PRODUCER_MISSING: &str = "kafka-producer has no producer API yet (issue 4); implement \
     LiveProducer in benches/src/live/clients/ours.rs when it lands";
const CONSUMER_MISSING: &str = "kafka-consumer has no consumer API yet (issue 5); implement \
     LiveConsumer in benches/src/live/clients/ours.rs when it lands";

/// `kafka-producer` (not wired yet: every call fails with [`LiveError::NotWired`]).
#[derive(Debug)]
pub struct OursProducer;

impl LiveProducer for OursProducer {
    const NAME: &'static str = "ours";

    fn version() -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn ready() -> Result<(), LiveError> {
        Err(LiveError::NotWired(PRODUCER_MISSING))
    }

    async fn connect(_job: &ProduceJob) -> Result<Self, LiveError> {
        Err(LiveError::NotWired(PRODUCER_MISSING))
    }

    async fn produce(
        &mut self,
        _job: &ProduceJob,
        _count: u64,
        _acks: &Arc<AckLog>,
    ) -> Result<(), LiveError> {
        Err(LiveError::NotWired(PRODUCER_MISSING))
    }

    async fn close(self) -> Result<(), LiveError> {
        Ok(())
    }
}

/// `kafka-consumer` (not wired yet: every call fails with [`LiveError::NotWired`]).
#[derive(Debug)]
pub struct OursConsumer;

impl LiveConsumer for OursConsumer {
    const NAME: &'static str = "ours";

    fn version() -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn ready() -> Result<(), LiveError> {
        Err(LiveError::NotWired(CONSUMER_MISSING))
    }

    async fn connect(_job: &ConsumeJob) -> Result<Self, LiveError> {
        Err(LiveError::NotWired(CONSUMER_MISSING))
    }

    async fn consume(
        &mut self,
        _job: &ConsumeJob,
        _progress: &mut Progress,
    ) -> Result<Consumed, LiveError> {
        Err(LiveError::NotWired(CONSUMER_MISSING))
    }

    async fn close(self) -> Result<(), LiveError> {
        Ok(())
    }
}
