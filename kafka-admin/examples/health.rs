//! The cluster health report, printed, or as JSON with `--json`.
//!
//! `cargo run -p kafka-admin --example health -- 127.0.0.1:9092 [--json]`
use kafka_admin::{Admin, AdminConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let admin = Admin::connect(AdminConfig::from_properties([(
        "bootstrap.servers",
        bootstrap,
    )])?)
    .await?;
    let report = admin.health_report().await?;
    if args.iter().any(|a| a == "--json") {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    // A non-zero exit lets scripts and monitors act on it.
    std::process::exit(if report.is_healthy() { 0 } else { 2 });
}
