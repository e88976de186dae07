//! Raw appends to the embedded log: the records of a dump
//! (`topic<TAB>key<TAB>value` lines) appended to a fresh embedded log in
//! batches, from several tasks at once, as ingest appends them, without
//! HTTP, parsing or enrichment. Prints events/s.

use anyhow::{Context, bail};
use clap::Parser;
use std::sync::Arc;
use std::time::Instant;

use footfall_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use footfall_eventlog::{Append, EventLog, Topic};

#[derive(Parser)]
struct Args {
    /// A folder for the log; must not hold one yet.
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long)]
    dump: std::path::PathBuf,
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.dir.join("events.redb").exists() {
        bail!("{} already holds a log", args.dir.display());
    }
    let mut records = Vec::new();
    for d in footfall_bench::read_dump(&args.dump)? {
        let topic = Topic::ALL
            .into_iter()
            .find(|t| d.topic.starts_with(t.name()))
            .with_context(|| format!("{} is not a footfall topic", d.topic))?;
        let id = serde_json::from_str::<serde_json::Value>(&d.value)
            .ok()
            .and_then(|v| v["event_id"].as_str().map(str::to_owned));
        records.push(Append {
            topic,
            key: d.key.into_bytes(),
            value: d.value.into_bytes(),
            dedup_id: id,
        });
    }
    let total = records.len();
    let batches: Vec<Vec<Append>> = records
        .chunks(args.batch.max(1))
        .map(<[Append]>::to_vec)
        .collect();
    let log = Arc::new(EmbeddedLog::open(&args.dir, EmbeddedConfig::default())?);
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (log, queue) = (log.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some(batch) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                log.append(batch).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "events": total,
            "seconds": seconds,
            "events_per_s": total as f64 / seconds,
        })
    );
    Ok(())
}
