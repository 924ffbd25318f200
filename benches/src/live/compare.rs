//! `live compare`: every client in turn, several rounds, each run a child process of this
//! binary (so that its CPU time and peak RSS are its own), then medians and ratios against
//! rdkafka.
//!
//! The order rotates every round (round r starts with client r mod n), so that no client
//! always runs first on a cold page cache or last on a warm one. Each child's JSON line is
//! passed through to stdout; a child that fails leaves a line with an `error` field and
//! the comparison goes on. After the rounds come one `"summary": true` line per client
//! and, on stderr, the same as a Markdown table.

use std::process::{Command, Stdio};

use crate::live::args::{CompareMode, ProduceSpec};
use crate::live::clients::{BASELINE, CONSUME_CLIENTS, PRODUCE_CLIENTS};
use crate::live::report::{self, Report, Value};
use crate::live::{setup, LiveError};

/// The figures `compare` keeps from each run.
const METRICS: [&str; 6] = [
    "records_per_sec",
    "mb_per_sec",
    "cpu_ns_per_record",
    "p50_ms",
    "p99_ms",
    "peak_rss_mb",
];

/// One client's runs.
#[derive(Debug, Default)]
struct Runs {
    client: String,
    ok: Vec<Vec<(String, Value)>>,
    errors: Vec<String>,
}

impl Runs {
    fn median(&self, metric: &str) -> Option<f64> {
        let mut v: Vec<f64> = self
            .ok
            .iter()
            .filter_map(|r| report::number(r, metric))
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }
}

/// Runs the comparison; `Ok` once every round ran, whatever the clients did.
pub fn run(clients: Vec<String>, rounds: u32, mode: CompareMode) -> Result<(), LiveError> {
    let (kind, known): (&str, &[&str]) = match &mode {
        CompareMode::Produce(_) => ("produce", &PRODUCE_CLIENTS),
        CompareMode::Consume { .. } => ("consume", &CONSUME_CLIENTS),
    };
    let clients: Vec<String> = if clients.is_empty() {
        known.iter().map(|c| c.to_string()).collect()
    } else {
        clients
    };
    for c in &clients {
        if !known.contains(&c.as_str()) {
            return Err(LiveError::UnknownClient {
                name: c.clone(),
                known: known.join(", "),
            });
        }
    }
    let common = match &mode {
        CompareMode::Produce(spec) => &spec.common,
        CompareMode::Consume { spec, .. } => &spec.common,
    };
    let bootstrap = setup::resolve_bootstrap(common.bootstrap.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let child_args: Vec<String> = match &mode {
        CompareMode::Produce(spec) => {
            let mut spec = spec.clone();
            spec.common.bootstrap = Some(bootstrap.clone());
            runtime.block_on(async {
                let c = setup::connect(&bootstrap).await?;
                let p = setup::ensure_topic(&c, &spec.common.topic, spec.partitions).await?;
                c.close();
                Ok::<_, LiveError>(p)
            })?;
            spec.to_args()
        }
        CompareMode::Consume {
            spec,
            fill_client,
            fill_size,
            fill_partitions,
        } => {
            let mut common = spec.common.clone();
            common.bootstrap = Some(bootstrap.clone());
            let have = runtime.block_on(async {
                let c = setup::connect(&bootstrap).await?;
                setup::ensure_topic(&c, &common.topic, *fill_partitions).await?;
                let n = setup::record_count(&c, &common.topic).await?;
                c.close();
                Ok::<_, LiveError>(n)
            })?;
            if have < common.records {
                let fill = ProduceSpec {
                    common: crate::live::args::Common {
                        records: common.records - have,
                        ..common.clone()
                    },
                    size: *fill_size,
                    acks: crate::live::args::Acks::All,
                    compression: crate::live::args::Compression::None,
                    partitions: *fill_partitions,
                    linger_ms: 5,
                    batch_size: 16_384,
                    idempotent: true,
                };
                eprintln!(
                    "live compare: topic {} holds {have} records; {fill_client} writes {} more",
                    common.topic, fill.common.records
                );
                let mut args = vec!["produce".into(), "--client".into(), fill_client.clone()];
                args.extend(fill.to_args());
                child(&args)?;
            }
            common.to_args()
        }
    };

    let mut runs: Vec<Runs> = clients
        .iter()
        .map(|c| Runs {
            client: c.clone(),
            ..Runs::default()
        })
        .collect();
    let n = runs.len();
    for round in 0..rounds as usize {
        for i in 0..n {
            let idx = (i + round) % n;
            let client = runs[idx].client.clone();
            let mut args = vec![kind.to_string(), "--client".into(), client.clone()];
            args.extend(child_args.iter().cloned());
            eprintln!(
                "live compare: round {}/{rounds}: {kind} {client}",
                round + 1
            );
            match child(&args) {
                Ok(fields) => runs[idx].ok.push(fields),
                Err(e) => {
                    let mut r = Report::new();
                    r.set("mode", kind)
                        .set("client", client.as_str())
                        .set("round", (round + 1) as u64)
                        .set("error", e.to_string());
                    println!("{}", r.to_json());
                    runs[idx].errors.push(e.to_string());
                }
            }
        }
    }
    summarise(kind, rounds, &runs);
    Ok(())
}

/// Runs `live <args>` as a child; its JSON line goes to our stdout and comes back parsed.
fn child(args: &[String]) -> Result<Vec<(String, Value)>, LiveError> {
    let exe = std::env::current_exe()?;
    let command = format!("live {}", args.join(" "));
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = stdout
        .lines()
        .rev()
        .find_map(|l| report::parse_flat(l).map(|f| (l.to_string(), f)));
    if let Some((line, _)) = &parsed {
        println!("{line}");
    }
    match (out.status.success(), parsed) {
        (true, Some((_, fields))) => Ok(fields),
        (true, None) => Err(LiveError::Child {
            command,
            reason: "it printed no JSON line".into(),
        }),
        (false, _) => Err(LiveError::Child {
            command,
            reason: format!("{} (its error is on stderr above)", out.status),
        }),
    }
}

fn summarise(kind: &str, rounds: u32, runs: &[Runs]) {
    let base = runs.iter().find(|r| r.client == BASELINE);
    let ratio = |r: &Runs, metric: &str| -> Option<f64> {
        let b = base?.median(metric)?;
        let v = r.median(metric)?;
        (b > 0.0).then(|| v / b)
    };
    let mut table = format!(
        "\n{kind}: medians of {rounds} round(s); ratios against {BASELINE} (records/s: above 1 is faster; CPU: below 1 is cheaper)\n\n\
         | client | runs ok | records/s | MB/s | CPU ns/record | p50 ms | p99 ms | peak RSS MiB | records/s vs {BASELINE} | CPU/record vs {BASELINE} |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let fmt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for r in runs {
        let mut s = Report::new();
        s.set("summary", true)
            .set("mode", kind)
            .set("client", r.client.as_str())
            .set("runs_ok", r.ok.len() as u64)
            .set("runs_failed", r.errors.len() as u64);
        for m in METRICS {
            s.set(median_key(m), r.median(m));
        }
        s.set("vs_rdkafka_records_per_sec", ratio(r, "records_per_sec"))
            .set(
                "vs_rdkafka_cpu_ns_per_record",
                ratio(r, "cpu_ns_per_record"),
            )
            .set("first_error", r.errors.first().cloned());
        if let Some(note) = r.ok.first().and_then(|f| report::string(f, "note")) {
            s.set("note", note.to_string());
        }
        println!("{}", s.to_json());
        table.push_str(&format!(
            "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.client,
            r.ok.len(),
            r.ok.len() + r.errors.len(),
            fmt(r.median("records_per_sec"), 0),
            fmt(r.median("mb_per_sec"), 1),
            fmt(r.median("cpu_ns_per_record"), 0),
            fmt(r.median("p50_ms"), 2),
            fmt(r.median("p99_ms"), 2),
            fmt(r.median("peak_rss_mb"), 1),
            fmt(ratio(r, "records_per_sec"), 2),
            fmt(ratio(r, "cpu_ns_per_record"), 2),
        ));
    }
    eprintln!("{table}");
}

fn median_key(metric: &str) -> &'static str {
    match metric {
        "records_per_sec" => "records_per_sec_median",
        "mb_per_sec" => "mb_per_sec_median",
        "cpu_ns_per_record" => "cpu_ns_per_record_median",
        "p50_ms" => "p50_ms_median",
        "p99_ms" => "p99_ms_median",
        _ => "peak_rss_mb_median",
    }
}
