//! What a run measures: process CPU time, peak RSS, ack latencies, progress, and the payload.
//!
//! CPU time and memory come from `/proc/self` (the crate forbids `unsafe`, so no
//! `getrusage`). `/proc/self/stat` gives user + system time of every thread the process
//! ever had, in `USER_HZ` ticks (100 per second on Linux); the kernel keeps nanoseconds
//! and rounds the process total, so a run of a few CPU seconds is read to about 1 %.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::live::LiveError;

/// `USER_HZ`: the unit of `utime`/`stime` in `/proc/<pid>/stat`, fixed at 100 by the
/// Linux ABI whatever the kernel's `HZ`.
const USER_HZ: u64 = 100;

/// User + system CPU time this process has used so far (all threads, dead or alive).
pub fn process_cpu_time() -> Result<Duration, LiveError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_nanos(ticks * (1_000_000_000 / USER_HZ)))
        .ok_or_else(|| LiveError::Setup(format!("cannot parse /proc/self/stat: {stat:?}")))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the command: state (3), ppid (4) ... utime is field 14, so the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size of this process in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mib() -> Result<f64, LiveError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_vm_hwm_kib(&status)
        .map(|kib| kib as f64 / 1024.0)
        .ok_or_else(|| LiveError::Setup("no VmHWM in /proc/self/status".into()))
}

fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The ack latencies of one produce run, and its delivery errors. Shared by whatever
/// thread or task sees the acknowledgements (an rdkafka callback thread, a collector task).
#[derive(Debug)]
pub struct AckLog {
    latencies_us: Mutex<Vec<u32>>,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl AckLog {
    /// A log with room for `records` latencies (allocated now, not during the run).
    pub fn with_capacity(records: u64) -> Self {
        AckLog {
            latencies_us: Mutex::new(Vec::with_capacity(records.min(1 << 28) as usize)),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    /// One record acknowledged `latency` after its send began.
    pub fn ack(&self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        lock(&self.latencies_us).push(us);
        self.acked.fetch_add(1, Ordering::Release);
    }

    /// One record failed.
    pub fn fail(&self, error: impl std::fmt::Display) {
        if self.failed.fetch_add(1, Ordering::AcqRel) == 0 {
            *lock(&self.first_error) = Some(error.to_string());
        }
    }

    /// Records acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Records failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Acquire)
    }

    /// Records with an outcome so far.
    pub fn done(&self) -> u64 {
        self.acked() + self.failed()
    }

    /// The first error seen.
    pub fn first_error(&self) -> Option<String> {
        lock(&self.first_error).clone()
    }

    /// The `q` quantile (0..=1) of the latencies in milliseconds (nearest rank), or `None`
    /// with no ack at all. Sorts the log in place.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let mut l = lock(&self.latencies_us);
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let rank = ((q * l.len() as f64).ceil() as usize).clamp(1, l.len());
        Some(f64::from(l[rank - 1]) / 1000.0)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking callback thread must not hide the figures of the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Watches a run's progress: fails it when nothing moved for too long or the whole run
/// took too long.
#[derive(Debug)]
pub struct Progress {
    client: &'static str,
    total: u64,
    started: Instant,
    timeout: Duration,
    stall_after: Duration,
    last_count: u64,
    last_change: Instant,
}

impl Progress {
    /// Starts watching now.
    pub fn new(client: &'static str, total: u64, timeout: Duration, stall_after: Duration) -> Self {
        let now = Instant::now();
        Progress {
            client,
            total,
            started: now,
            timeout,
            stall_after,
            last_count: 0,
            last_change: now,
        }
    }

    /// Reports the count done so far; an error when stalled or out of time.
    pub fn check(&mut self, done: u64) -> Result<(), LiveError> {
        let now = Instant::now();
        if done != self.last_count {
            self.last_count = done;
            self.last_change = now;
            return Ok(());
        }
        let waited = now - self.last_change;
        if waited >= self.stall_after || now - self.started >= self.timeout {
            return Err(LiveError::Stalled {
                client: self.client,
                done,
                total: self.total,
                waited,
            });
        }
        Ok(())
    }
}

/// The value every produced record carries: `size` bytes of text-like data (letters and
/// spaces from a small alphabet, about 2:1 with lz4) so that compression has work to do.
/// Deterministic: every client sends the same bytes.
pub fn payload(size: usize) -> Bytes {
    const WORDS: [&[u8]; 16] = [
        b"kafka ",
        b"record ",
        b"batch ",
        b"offset ",
        b"leader ",
        b"replica ",
        b"topic ",
        b"fetch ",
        b"produce ",
        b"ack ",
        b"linger ",
        b"epoch ",
        b"segment ",
        b"log ",
        b"group ",
        b"commit ",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(size + 16);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(WORDS[(state % 16) as usize]);
    }
    out.truncate(size);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 4 0 99";
        assert_eq!(parse_cpu_ticks(line), Some(287));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(process_cpu_time().is_ok());
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_time().unwrap();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let used = process_cpu_time().unwrap() - before;
        // On a shared 2-core machine the thread may be descheduled part of the time.
        assert!(used >= Duration::from_millis(50), "{used:?}");
    }

    #[test]
    fn vm_hwm_is_read() {
        assert_eq!(
            parse_vm_hwm_kib("Name:\tx\nVmHWM:\t  2048 kB\n"),
            Some(2048)
        );
        assert!(peak_rss_mib().unwrap() > 0.0);
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let log = AckLog::with_capacity(100);
        assert_eq!(log.quantile_ms(0.5), None);
        for ms in (1..=100).rev() {
            log.ack(Duration::from_millis(ms));
        }
        log.fail("boom");
        log.fail("second");
        assert_eq!(log.quantile_ms(0.5), Some(50.0));
        assert_eq!(log.quantile_ms(0.99), Some(99.0));
        assert_eq!(log.quantile_ms(1.0), Some(100.0));
        assert_eq!((log.acked(), log.failed(), log.done()), (100, 2, 102));
        assert_eq!(log.first_error().as_deref(), Some("boom"));
    }

    #[test]
    fn progress_fails_a_stalled_run() {
        let mut p = Progress::new("x", 10, Duration::from_secs(60), Duration::from_millis(20));
        p.check(1).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert!(matches!(
            p.check(1),
            Err(LiveError::Stalled {
                done: 1,
                total: 10,
                ..
            })
        ));
    }

    #[test]
    fn payload_is_deterministic_and_sized() {
        assert_eq!(payload(100).len(), 100);
        assert_eq!(payload(100), payload(100));
        assert_eq!(payload(1).len(), 1);
    }
}
