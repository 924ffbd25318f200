//! A `metrics` recorder that keeps every value, for tests of what our clients report.
//!
//! [`Capture::run`] drives a future on a current-thread runtime with the recorder installed
//! for that thread only (`metrics::with_local_recorder`): every task the clients spawn runs
//! on that thread, so the capture sees all of their metrics and none of the tests running
//! beside it in the same binary.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

#[derive(Default)]
struct Store {
    counters: HashMap<String, Arc<AtomicU64>>,
    /// `f64` bits, as the facade's `GaugeFn for AtomicU64` keeps them.
    gauges: HashMap<String, Arc<AtomicU64>>,
    histograms: HashMap<String, Arc<Samples>>,
}

/// Every counter, gauge and histogram recorded, by name and labels: `name` without labels,
/// `name{a=x,b=y}` with them (labels sorted by name).
#[derive(Default)]
pub struct Capture(Mutex<Store>);

fn key_string(key: &Key) -> String {
    let labels: BTreeMap<&str, &str> = key.labels().map(|l| (l.key(), l.value())).collect();
    if labels.is_empty() {
        return key.name().to_owned();
    }
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut s = self.0.lock().unwrap();
        Counter::from_arc(Arc::clone(s.counters.entry(key_string(key)).or_default()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut s = self.0.lock().unwrap();
        Gauge::from_arc(Arc::clone(s.gauges.entry(key_string(key)).or_default()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut s = self.0.lock().unwrap();
        Histogram::from_arc(Arc::clone(s.histograms.entry(key_string(key)).or_default()))
    }
}

impl Capture {
    /// Runs `f` to completion on a current-thread runtime, recording into this capture
    /// (the runtime, and whatever its tasks still hold, is dropped inside too).
    pub fn run<F: Future>(&self, f: F) -> F::Output {
        metrics::with_local_recorder(self, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f)
        })
    }

    /// A counter's value (0 when never touched).
    pub fn counter(&self, key: &str) -> u64 {
        let s = self.0.lock().unwrap();
        s.counters.get(key).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// A gauge's last value (`None` when never set).
    pub fn gauge(&self, key: &str) -> Option<f64> {
        let s = self.0.lock().unwrap();
        s.gauges
            .get(key)
            .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
    }

    /// A histogram's samples, in the order recorded.
    pub fn histogram(&self, key: &str) -> Vec<f64> {
        let s = self.0.lock().unwrap();
        s.histograms
            .get(key)
            .map(|h| h.0.lock().unwrap().clone())
            .unwrap_or_default()
    }
}
