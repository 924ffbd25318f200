//! Counters, exported through the `metrics` facade and as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::accumulator::Followups;

/// A snapshot of a producer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Records accepted by `send`.
    pub records_queued: u64,
    /// Records acknowledged by brokers.
    pub records_acked: u64,
    /// Batch bytes acknowledged (after compression).
    pub bytes_acked: u64,
    /// Produce requests sent.
    pub requests: u64,
    /// Batches retried.
    pub retries: u64,
    /// Batches that failed.
    pub batches_failed: u64,
    /// Sends that had to wait for buffer space.
    pub blocked_sends: u64,
    /// Bytes of records buffered (waiting or in flight).
    pub buffered_bytes: u64,
    /// Produce requests in flight.
    pub in_flight_requests: u64,
    /// Produce request round trips measured, and their total and largest duration.
    pub request_count: u64,
    /// Sum of request latencies.
    pub request_latency_total: Duration,
    /// Largest request latency.
    pub request_latency_max: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    records_queued: AtomicU64,
    records_acked: AtomicU64,
    bytes_acked: AtomicU64,
    pub(crate) requests: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    blocked: AtomicU64,
    latency_count: AtomicU64,
    latency_total_ns: AtomicU64,
    latency_max_ns: AtomicU64,
}

impl Stats {
    pub(crate) fn note_sent(&self, _size: usize) {
        self.records_queued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_blocked(&self) {
        self.blocked.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kafka_producer_blocked_sends_total").increment(1);
    }

    pub(crate) fn note(&self, f: &Followups) {
        if f.records_acked > 0 {
            self.records_acked
                .fetch_add(f.records_acked, Ordering::Relaxed);
            self.bytes_acked.fetch_add(f.bytes_acked, Ordering::Relaxed);
            metrics::counter!("kafka_producer_records_acked_total").increment(f.records_acked);
            metrics::counter!("kafka_producer_bytes_acked_total").increment(f.bytes_acked);
        }
        if f.retries > 0 {
            self.retries.fetch_add(f.retries, Ordering::Relaxed);
            metrics::counter!("kafka_producer_batch_retries_total").increment(f.retries);
        }
        if f.failed > 0 {
            self.failed.fetch_add(f.failed, Ordering::Relaxed);
            metrics::counter!("kafka_producer_batch_errors_total").increment(f.failed);
        }
    }

    pub(crate) fn record_latency(&self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_total_ns.fetch_add(ns, Ordering::Relaxed);
        self.latency_max_ns.fetch_max(ns, Ordering::Relaxed);
        metrics::histogram!("kafka_producer_request_latency_seconds").record(d.as_secs_f64());
    }

    pub(crate) fn snapshot(&self, buffered: usize, in_flight: usize) -> ProducerStats {
        metrics::gauge!("kafka_producer_buffered_bytes").set(buffered as f64);
        metrics::gauge!("kafka_producer_in_flight_requests").set(in_flight as f64);
        ProducerStats {
            records_queued: self.records_queued.load(Ordering::Relaxed),
            records_acked: self.records_acked.load(Ordering::Relaxed),
            bytes_acked: self.bytes_acked.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            batches_failed: self.failed.load(Ordering::Relaxed),
            blocked_sends: self.blocked.load(Ordering::Relaxed),
            buffered_bytes: buffered as u64,
            in_flight_requests: in_flight as u64,
            request_count: self.latency_count.load(Ordering::Relaxed),
            request_latency_total: Duration::from_nanos(
                self.latency_total_ns.load(Ordering::Relaxed),
            ),
            request_latency_max: Duration::from_nanos(self.latency_max_ns.load(Ordering::Relaxed)),
        }
    }
}
