//! The raw rdkafka producer, as a user would write it: the records of a
//! dump (`topic<TAB>key<TAB>value` per line, as `kcat -f '%t\t%k\t%s\n'`
//! writes of footfall's topics) sent to the same topics under another
//! suffix, with the settings footfall's ingest uses (idempotent,
//! `acks=all`, lz4, the same linger, batch size and partitioner), every
//! delivery awaited. The topics are created first, as footfall creates
//! them. Prints events/s.

use anyhow::Context;
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::{Duration, Instant};

use footfall_eventlog::kafka::{KafkaConfig, KafkaLog};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    bootstrap: String,
    /// Suffix of the topics to write (`footfall.scans.v1SUFFIX`), new.
    #[arg(long)]
    suffix: String,
    /// `topic<TAB>key<TAB>value` lines.
    #[arg(long)]
    dump: std::path::PathBuf,
    /// Records in flight at most (sent, not yet acknowledged).
    #[arg(long, default_value_t = 50_000)]
    window: usize,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut records = Vec::new();
    for d in footfall_bench::read_dump(&args.dump)? {
        let base = d
            .topic
            .find(".v1")
            .map(|i| &d.topic[..i + 3])
            .with_context(|| format!("{} is not a footfall topic", d.topic))?;
        records.push((format!("{base}{}", args.suffix), d.key, d.value));
    }
    let mut config = KafkaConfig::new(args.bootstrap.clone());
    config.topic_suffix = args.suffix.clone();
    KafkaLog::connect(config)
        .await
        .context("creating the topics")?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "65536")
        .create()?;
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::with_capacity(args.window);
    for (topic, key, value) in &records {
        if in_flight.len() >= args.window {
            let delivery: rdkafka::producer::DeliveryFuture =
                in_flight.pop_front().expect("the window is not empty");
            delivery
                .await?
                .map_err(|(e, _)| anyhow::anyhow!("delivery failed: {e}"))?;
        }
        let mut record = FutureRecord::to(topic).payload(value.as_str());
        if !key.is_empty() {
            record = record.key(key.as_str());
        }
        in_flight.push_back(
            producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("send failed: {e}"))?,
        );
    }
    for delivery in in_flight {
        delivery
            .await?
            .map_err(|(e, _)| anyhow::anyhow!("delivery failed: {e}"))?;
    }
    producer.flush(Duration::from_secs(30))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "events": records.len(),
            "seconds": seconds,
            "events_per_s": records.len() as f64 / seconds,
        })
    );
    Ok(())
}
