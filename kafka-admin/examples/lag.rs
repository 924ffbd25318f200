//! Consumer lag of one group, or of every consumer group.
//!
//! `cargo run -p kafka-admin --example lag -- 127.0.0.1:9092 [group]`
use kafka_admin::{Admin, AdminConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let admin = Admin::connect(AdminConfig::from_properties([(
        "bootstrap.servers",
        bootstrap,
    )])?)
    .await?;
    let lags = match args.next() {
        Some(group) => vec![admin.consumer_lag(&group).await?],
        None => admin.consumer_lag_all().await?,
    };
    for lag in &lags {
        println!("{lag}");
    }
    if lags.is_empty() {
        println!("no consumer groups");
    }
    Ok(())
}
