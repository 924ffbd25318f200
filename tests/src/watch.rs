//! Keeps a sick broker from hanging the suite.
//!
//! A broker that dies or wedges mid-run turned every later call of a test binary into a wait
//! for its API timeout, and a polling loop of such calls into hours: CI then hit its own limit
//! with nothing to say about the broker. Here:
//! - every `scripts/kafka` call and every child tool runs under a time limit ([`output_within`]);
//! - a watchdog thread asks the cluster's brokers for ApiVersions every few seconds. When none
//!   has answered for [`UNRESPONSIVE_LIMIT`], or the binary has run longer than its limit
//!   (`KAFKA_TEST_BINARY_TIMEOUT_SECS`, default 900 s, ten times the slowest binary), it
//!   prints what the cluster looks like and ends the binary with a failure;
//! - a test that panics gets a line saying whether the brokers still answer, so a failure
//!   caused by the broker reads as one.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{api_versions_v0, run_script, state_dir, Cluster, Listener};

/// How long no broker of the cluster may fail to answer ApiVersions before the watchdog ends
/// the test binary. Tests stop or pause one broker of three at a time, never all of them.
pub const UNRESPONSIVE_LIMIT: Duration = Duration::from_secs(120);

const PROBE_EVERY: Duration = Duration::from_secs(5);
const DEFAULT_BINARY_LIMIT: Duration = Duration::from_secs(900);

/// Runs `cmd` like [`Command::output`] (stdin closed, stdout and stderr captured), but kills it
/// once it has run for `limit`. The output then ends with a line saying so, and its status is
/// the kill's (never success).
pub fn output_within(mut cmd: Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_within(&mut child, limit)?;
    let stdout = out.join().unwrap_or_default();
    let mut stderr = err.join().unwrap_or_default();
    let status = match status {
        Some(s) => s,
        None => {
            stderr.extend_from_slice(
                format!("\nkafka test kit: killed after {limit:?} (its time limit)\n").as_bytes(),
            );
            child.wait()?
        }
    };
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Waits for `child` up to `limit`; kills it and gives `None` when it is still running then.
fn wait_within(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            // A killed child's grandchildren may keep the pipe open; what was read so far is
            // still worth showing, so read errors end the read rather than fail it.
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Whether any broker of `cluster` answers ApiVersions on its PLAINTEXT listener; `Err` names
/// what each said instead.
pub fn brokers_answer(cluster: &Cluster) -> Result<(), String> {
    let mut why = Vec::new();
    for (i, b) in cluster.brokers().iter().enumerate() {
        let Some(addr) = b.addr(Listener::Plaintext) else {
            continue;
        };
        match api_versions_v0(addr, 0x7e57_0000 + i as i32) {
            Ok(r) if r.error_code == 0 => return Ok(()),
            Ok(r) => why.push(format!(
                "broker {} ({addr}): error code {}",
                b.id, r.error_code
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                why.push(format!("broker {} ({addr}): no answer in time ({e})", b.id))
            }
            Err(e) => why.push(format!("broker {} ({addr}): {e}", b.id)),
        }
    }
    Err(why.join("; "))
}

/// What the cluster looks like: `scripts/kafka status`, the tail of every broker's log and its
/// WARN/ERROR lines, the disk under the kit's state and the machine's free memory. Bounded in
/// time and size.
pub fn diagnostics(cluster: &Cluster) -> String {
    let mut s = String::from("---- kafka test kit: cluster diagnostics ----\n");
    let status = run_script(&["status"]);
    s.push_str(&String::from_utf8_lossy(&status.stdout));
    s.push_str(&String::from_utf8_lossy(&status.stderr));
    s.push_str(&format!(
        "brokers answering ApiVersions: {}\n",
        match brokers_answer(cluster) {
            Ok(()) => "yes".to_string(),
            Err(why) => format!("none ({why})"),
        }
    ));
    for b in cluster.brokers() {
        let Some(log) = &b.log_file else { continue };
        let text = std::fs::read(log)
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", log.display()));
        let lines: Vec<&str> = text.lines().collect();
        let bad: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("] WARN ") || l.contains("] ERROR ") || l.contains("FATAL"))
            .collect();
        s.push_str(&format!(
            "-- broker {}: last WARN/ERROR lines of {} ({} in all):\n",
            b.id,
            log.display(),
            bad.len()
        ));
        for l in &bad[bad.len().saturating_sub(15)..] {
            s.push_str(&clip(l));
        }
        s.push_str(&format!("-- broker {}: last lines:\n", b.id));
        for l in &lines[lines.len().saturating_sub(25)..] {
            s.push_str(&clip(l));
        }
        if let Some(dir) = log.parent() {
            s.push_str(&thread_summary(b.id, dir));
        }
    }
    let mut df = Command::new("df");
    df.arg("-h").arg(state_dir());
    if let Ok(o) = output_within(df, Duration::from_secs(10)) {
        s.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    if let Ok(mem) = std::fs::read_to_string("/proc/meminfo") {
        for l in mem
            .lines()
            .filter(|l| l.starts_with("MemTotal") || l.starts_with("MemAvailable"))
        {
            s.push_str(l);
            s.push('\n');
        }
    }
    s.push_str("---- end of cluster diagnostics ----\n");
    s
}

/// For a broker JVM that is alive: its thread dump (`jcmd <pid> Thread.print`) saved beside its
/// log, summarised as a count of threads per state plus any deadlock jcmd found. A wedged
/// broker shows here what it waits for.
fn thread_summary(id: i32, node_dir: &Path) -> String {
    let Ok(pid) = std::fs::read_to_string(node_dir.join("pid")) else {
        return String::new();
    };
    let pid = pid.trim();
    let mut jcmd = Command::new("jcmd");
    jcmd.args([pid, "Thread.print"]);
    let dump = match output_within(jcmd, Duration::from_secs(30)) {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            return format!(
                "-- broker {id}: no thread dump (jcmd {pid}: {})\n",
                String::from_utf8_lossy(&o.stderr).trim()
            )
        }
        Err(e) => return format!("-- broker {id}: no thread dump (jcmd: {e})\n"),
    };
    let file = node_dir.join(format!("threads-{}.txt", std::process::id()));
    let _ = std::fs::write(&file, &dump);
    let mut states = std::collections::BTreeMap::<&str, usize>::new();
    for l in dump.lines() {
        if let Some(state) = l.trim().strip_prefix("java.lang.Thread.State: ") {
            *states
                .entry(state.split_whitespace().next().unwrap_or(state))
                .or_default() += 1;
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    // "Max open files  <soft>  <hard>  files"
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let fd_limit = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .map(|rest| {
            rest.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default();
    let mut s = format!(
        "-- broker {id}: {fds} open files (limit soft/hard {fd_limit}); threads by state \
         {states:?} (dump in {})\n",
        file.display()
    );
    if let Some(at) = dump.find("Java-level deadlock") {
        for l in dump[at..].lines().take(40) {
            s.push_str(&clip(l));
        }
    }
    s
}

fn clip(line: &str) -> String {
    let mut l: String = line.chars().take(400).collect();
    l.push('\n');
    l
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// Starts, once per process, the watchdog over `cluster` and the panic hook that says whether
/// the brokers still answer. Does nothing for a cluster the kit does not manage.
pub fn watch(cluster: &'static Cluster) {
    if !cluster.is_managed() || STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let binary_limit = std::env::var("KAFKA_TEST_BINARY_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_BINARY_LIMIT);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        match brokers_answer(cluster) {
            Ok(()) => eprintln!("kafka test kit: the brokers still answer ApiVersions"),
            Err(why) => eprintln!("kafka test kit: no broker answers ApiVersions: {why}"),
        }
    }));
    let spawned = std::thread::Builder::new()
        .name("kafka-kit-watchdog".into())
        .spawn(move || watchdog(cluster, binary_limit));
    if let Err(e) = spawned {
        eprintln!("kafka test kit: no watchdog thread: {e}");
    }
}

fn watchdog(cluster: &'static Cluster, binary_limit: Duration) {
    let started = Instant::now();
    let mut last_answer = Instant::now();
    loop {
        std::thread::sleep(PROBE_EVERY);
        match brokers_answer(cluster) {
            Ok(()) => last_answer = Instant::now(),
            Err(why) if last_answer.elapsed() >= UNRESPONSIVE_LIMIT => {
                give_up(
                    cluster,
                    &format!(
                        "no broker has answered ApiVersions for {}s ({why})",
                        last_answer.elapsed().as_secs()
                    ),
                );
            }
            Err(_) => {}
        }
        if started.elapsed() >= binary_limit {
            give_up(
                cluster,
                &format!(
                    "this test binary has run for {}s, past its limit \
                     (KAFKA_TEST_BINARY_TIMEOUT_SECS)",
                    started.elapsed().as_secs()
                ),
            );
        }
    }
}

fn give_up(cluster: &Cluster, why: &str) -> ! {
    // Straight to the process's stderr: `eprintln!` would land in the capture buffer of the
    // test that started this thread (spawned threads inherit it), which nobody prints once
    // the process exits.
    let text = format!(
        "\nkafka test kit: {why}; ending this test binary as failed\n{}",
        diagnostics(cluster)
    );
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
    std::process::exit(124);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_within_returns_what_a_quick_command_printed() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let o = output_within(cmd, Duration::from_secs(30)).unwrap();
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(o.stdout, b"out\n");
        assert_eq!(o.stderr, b"err\n");
    }

    #[test]
    fn output_within_kills_a_command_that_overruns() {
        let started = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo before; exec sleep 60"]);
        let o = output_within(cmd, Duration::from_millis(500)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(!o.status.success());
        assert_eq!(o.stdout, b"before\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("killed after 500ms"), "{err}");
    }
}
