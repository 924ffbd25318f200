//! `live`: produce and consume runs against a live Kafka broker, ours beside the peer
//! clients, one JSON object per run on stdout. `live --help` for the options; the code is
//! in `benches::live`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use benches::live::args::Command;
use benches::live::{clients, compare, setup, LiveError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("live: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, LiveError> {
    // Two workers: the machine's cores. Multi-threaded so that the blocking librdkafka
    // calls can use `block_in_place`.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn run(args: &[String]) -> Result<ExitCode, LiveError> {
    match Command::parse(args)? {
        Command::Help => {
            println!("{}", benches::live::args::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Produce { client, spec } => {
            let bootstrap = setup::resolve_bootstrap(spec.common.bootstrap.as_deref())?;
            let (report, failure) =
                runtime()?.block_on(clients::produce(&client, spec, bootstrap))?;
            println!("{}", report.to_json());
            match failure {
                None => Ok(ExitCode::SUCCESS),
                Some(e) => Err(e),
            }
        }
        Command::Consume { client, spec } => {
            let bootstrap = setup::resolve_bootstrap(spec.common.bootstrap.as_deref())?;
            let report = runtime()?.block_on(clients::consume(&client, spec, bootstrap))?;
            println!("{}", report.to_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            clients,
            rounds,
            mode,
        } => {
            compare::run(clients, rounds, mode)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
