//! Reads N records from the beginning of a topic with [`kafka_consumer::consume_count`] (the
//! `ours` entry point for the bench harness) and prints the figures as JSON.
//!
//! `cargo run --release -p kafka-consumer --example consume -- <bootstrap> <topic> <records>`

use std::time::Instant;

fn proc_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of this process in nanoseconds (Linux, 100 Hz clock ticks).
fn cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    ticks * 10_000_000
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, records] = &args[..] else {
        eprintln!("usage: consume <bootstrap> <topic> <records>");
        std::process::exit(2);
    };
    let records: u64 = records.parse().expect("records");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cpu0 = cpu_ns();
    let t0 = Instant::now();
    let (n, bytes) = rt
        .block_on(kafka_consumer::consume_count(bootstrap, topic, records))
        .expect("consume");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_ns() - cpu0;
    let rss_kb = proc_field("/proc/self/status", "VmHWM:").unwrap_or(0);
    println!(
        "{{\"client\":\"ours\",\"records\":{n},\"seconds\":{secs:.3},\"records_per_sec\":{:.0},\"mb_per_sec\":{:.1},\"cpu_ns_per_record\":{:.0},\"peak_rss_mb\":{:.1}}}",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        cpu as f64 / n as f64,
        rss_kb as f64 / 1024.0
    );
}
