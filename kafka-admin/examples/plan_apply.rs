//! Desired state: print the plan for a TOML or YAML spec, and apply it with `--apply`.
//!
//! `cargo run -p kafka-admin --example plan_apply -- 127.0.0.1:9092 spec.toml [--apply] [--allow-deletions] [--scope PREFIX]`
use std::path::PathBuf;

use kafka_admin::desired::{DesiredState, PlanOptions};
use kafka_admin::{Admin, AdminConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut apply = false;
    let mut opts = PlanOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--apply" => apply = true,
            "--allow-deletions" => opts.allow_deletions = true,
            "--scope" => opts.scope_prefix = args.next(),
            _ => positional.push(a),
        }
    }
    let [bootstrap, spec] = <[String; 2]>::try_from(positional)
        .map_err(|_| "usage: plan_apply BOOTSTRAP SPEC.toml|SPEC.yaml [--apply] [--allow-deletions] [--scope PREFIX]")?;
    let spec = DesiredState::from_path(&PathBuf::from(spec))?;
    let admin = Admin::connect(AdminConfig::from_properties([(
        "bootstrap.servers",
        bootstrap,
    )])?)
    .await?;
    let plan = admin.plan(&spec, &opts).await?;
    print!("{plan}");
    if apply && !plan.is_empty() {
        admin.apply(&plan).await?;
        println!("applied");
    }
    Ok(())
}
