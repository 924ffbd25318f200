//! Produces N records of S bytes to a topic as fast as the producer allows and prints the rate.
//!
//! `cargo run --release -p kafka-producer --example produce -- 127.0.0.1:9092 topic 1000000 100`
//! (the topic must exist; `scripts/kafka tool topics --create ...` makes one).

use std::time::{Duration, Instant};

use kafka_producer::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "bench".into());
    let n: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let size: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let compression = args.next().unwrap_or_else(|| "none".into());

    let mut config = ProducerConfig::new([bootstrap.as_str()])?.compression(compression.parse()?);
    if let Ok(b) = std::env::var("BATCH_SIZE") {
        config = config.batch_size(b.parse()?);
    }
    if let Ok(l) = std::env::var("LINGER_MS") {
        config = config.linger(Duration::from_millis(l.parse()?));
    }
    let producer = Producer::new(config).await?;
    let value = bytes::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    // A task awaits the acknowledgements while this one sends (as a service would).
    let (tx, mut rx) = tokio::sync::mpsc::channel(100_000);
    let waiter = tokio::spawn(async move {
        let mut errors = 0usize;
        while let Some(f) = rx.recv().await {
            let f: kafka_producer::DeliveryFuture = f;
            if f.await.is_err() {
                errors += 1;
            }
        }
        errors
    });
    for _ in 0..n {
        let f = producer
            .send(ProducerRecord::new(topic.clone(), value.clone()))
            .await?;
        tx.send(f).await?;
    }
    drop(tx);
    let errors = waiter.await?;
    let elapsed = started.elapsed();
    producer.close(Duration::from_secs(30)).await?;
    let stats = producer.stats();
    println!(
        "{n} records of {size} B in {:.2?}: {:.0} records/s, {:.1} MB/s, {errors} errors, {} requests, {} retries",
        elapsed,
        n as f64 / elapsed.as_secs_f64(),
        (n * size) as f64 / elapsed.as_secs_f64() / 1e6,
        stats.requests,
        stats.retries
    );
    Ok(())
}
