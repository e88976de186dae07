//! HTTP ingest load: sends an NDJSON file to footfall's `POST /v1/events` in
//! batches from several connections, as fast as the server acknowledges
//! (closed loop) or at a fixed rate (open loop, `--rate`), and prints the
//! events/s and the acknowledgement latency of each batch.
//!
//! A batch answered 503 is resent after its `Retry-After` (counted); any
//! other failure stops the run. In open loop a batch's latency is measured
//! from its scheduled start, so a server that falls behind shows it.

use anyhow::{Context, bail};
use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use footfall_bench::Latencies;

#[derive(Parser)]
struct Args {
    /// Server base URLs (comma-separated); batches go to them in turn.
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    /// Events, one JSON per line (as `footfall sim --out` writes).
    #[arg(long)]
    events: std::path::PathBuf,
    /// Lines per batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Events per second to offer (open loop); as fast as possible without.
    #[arg(long)]
    rate: Option<f64>,
    /// Send at most this many events (default: the whole file).
    #[arg(long)]
    limit: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.events)
        .with_context(|| format!("reading {}", args.events.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    let batches: Arc<Vec<String>> = Arc::new(
        lines
            .chunks(args.batch.max(1))
            .map(|c| c.join("\n") + "\n")
            .collect(),
    );
    let batch_lines: Arc<Vec<usize>> =
        Arc::new(lines.chunks(args.batch.max(1)).map(<[_]>::len).collect());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let urls: Arc<Vec<String>> = Arc::new(
        args.target
            .iter()
            .map(|t| format!("{}/v1/events", t.trim_end_matches('/')))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, urls, batches, next, retries) = (
            client.clone(),
            urls.clone(),
            batches.clone(),
            next.clone(),
            retries.clone(),
        );
        let (rate, per_batch) = (args.rate, args.batch as f64);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = batches.get(i) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let scheduled = match rate {
                    Some(rate) => {
                        let at = started + Duration::from_secs_f64(i as f64 * per_batch / rate);
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                loop {
                    let url = &urls[i % urls.len()];
                    let answer = client
                        .post(url)
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await
                        .with_context(|| format!("posting to {url}"))?;
                    let status = answer.status();
                    if status.as_u16() == 503 {
                        retries.fetch_add(1, Ordering::Relaxed);
                        let wait = answer
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                            .unwrap_or(1);
                        tokio::time::sleep(Duration::from_secs(wait)).await;
                        continue;
                    }
                    let text = answer.text().await?;
                    if !status.is_success() {
                        bail!("{url} answered {status}: {text}");
                    }
                    break;
                }
                latencies.push(scheduled.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let events: usize = batch_lines.iter().sum();
    let l = Latencies::of(&mut latencies).context("no batches sent")?;
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "batches": batches.len(),
            "batch": args.batch,
            "concurrency": args.concurrency,
            "offered_rate": args.rate,
            "seconds": seconds,
            "events_per_s": events as f64 / seconds,
            "p50_ms": l.p50_ms,
            "p99_ms": l.p99_ms,
            "max_ms": l.max_ms,
            "retries_503": retries.load(Ordering::Relaxed),
        })
    );
    Ok(())
}
