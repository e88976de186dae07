//! The materialiser's replay rate, stage by stage, on a fixed input: one
//! simulated day (seed 7, no faults) ingested through the real ingest route
//! into an embedded log, then replayed into fresh tables from copies of
//! that log. Prints one JSON object with seconds and records/s per stage:
//!
//! - `read`: the log's records read to its end (redb, copies into memory);
//! - `parse`: the same records parsed as JSON records, nothing else;
//! - `materialise`: the materialiser alone (parse, times, dedup, Arrow
//!   builders, snapshots) until it is caught up, then its last flush
//!   (Parquet and checkpoint) separately;
//! - `serve`: what `footfall serve` runs without HTTP (SQL engine, live
//!   state, materialiser): its start, the replay until caught up (the moment
//!   `/readyz` answers 200) and the last flush.
//!
//! `--log-cache DIR` keeps the prepared log, so repeated runs (and
//! `valgrind --tool=callgrind` runs of one `--stage`) read the same bytes.

use anyhow::{Context, bail, ensure};
use axum::body::Body;
use axum::http::Request;
use clap::{Parser, ValueEnum};
use prometheus::Registry;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tower::ServiceExt;

use footfall_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use footfall_eventlog::{Delivered, EventLog, Polled, Topic};
use footfall_ingest::{Ingest, IngestConfig, IngestMetrics, Pseudonymiser};
use footfall_query::materialise::{Materialiser, Progress, read_manifest};
use footfall_query::snapshot::SharedSnapshot;
use footfall_query::{Query, QueryConfig, QueryMetrics, QueryOptions};
use footfall_schemas::Venue;
use footfall_schemas::record::{RejectedRecord, ScanRecord, TicketRecord};
use footfall_sim::{Faults, SimConfig, Simulator};

#[derive(Parser)]
struct Args {
    /// Where the prepared log is kept (built there when it holds none).
    /// Without it the log is built in a temporary folder.
    #[arg(long)]
    log_cache: Option<PathBuf>,
    /// Simulated days in the prepared log.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// The stages to run (all by default).
    #[arg(long, value_enum)]
    stage: Vec<Stage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Stage {
    Read,
    Parse,
    Materialise,
    Serve,
}

/// Lines per ingest request, as `bench/run` sends them.
const INGEST_BATCH: usize = 500;
/// Longest a replay may take before the run is declared stuck.
const REPLAY_LIMIT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stages = if args.stage.is_empty() {
        vec![Stage::Read, Stage::Parse, Stage::Materialise, Stage::Serve]
    } else {
        args.stage.clone()
    };
    let venue = Arc::new(footfall_schemas::venue::reference());
    let temp = tempfile::tempdir()?;
    let cache = args
        .log_cache
        .clone()
        .unwrap_or_else(|| temp.path().join("cache"));
    let log_file = cache.join("events.redb");
    let mut out = serde_json::Map::new();
    if !log_file.exists() {
        let started = Instant::now();
        let lines = prepare(&venue, &cache, args.days).await?;
        out.insert(
            "prepare".into(),
            serde_json::json!({"lines": lines, "seconds": started.elapsed().as_secs_f64()}),
        );
    }

    let mut delivered = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let work = temp.path().join(format!("stage-{i}"));
        std::fs::create_dir_all(work.join("log"))?;
        std::fs::copy(&log_file, work.join("log/events.redb"))
            .with_context(|| format!("copying {}", log_file.display()))?;
        let result = match stage {
            Stage::Read => {
                let (records, json) = read(&work).await?;
                delivered = records;
                json
            }
            Stage::Parse => {
                if delivered.is_empty() {
                    delivered = read(&work).await?.0;
                }
                parse(&delivered)?
            }
            Stage::Materialise => materialise(&venue, &work).await?,
            Stage::Serve => serve(&venue, &work).await?,
        };
        out.insert(format!("{stage:?}").to_lowercase(), result);
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// Ingests the simulated days into a new embedded log in `dir` through the
/// ingest route, with a fixed pseudonymisation key. Returns the lines sent.
async fn prepare(venue: &Arc<Venue>, dir: &Path, days: u32) -> anyhow::Result<usize> {
    let log = Arc::new(EmbeddedLog::open(dir, EmbeddedConfig::default())?);
    let ingest = Arc::new(Ingest {
        venue: venue.clone(),
        log: log.clone(),
        pseudonymiser: Pseudonymiser::new(b"footfall materialiser bench key"),
        config: IngestConfig::default(),
        metrics: IngestMetrics::register(&Registry::new())?,
    });
    let router = footfall_ingest::router(ingest);
    let config = SimConfig {
        seed: 7,
        days,
        faults: Faults::none(),
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(venue, config)?;
    let mut lines = Vec::new();
    while let Some(chunk) = sim.next_chunk() {
        lines.extend(chunk.into_iter().map(|o| o.line));
    }
    for batch in lines.chunks(INGEST_BATCH) {
        let request = Request::post("/v1/events")
            .header("content-type", "application/x-ndjson")
            .body(Body::from(batch.join("\n")))?;
        let response = router.clone().oneshot(request).await?;
        ensure!(
            response.status().is_success(),
            "ingest answered {}",
            response.status()
        );
    }
    Ok(lines.len())
}

fn rate(records: usize, seconds: f64) -> f64 {
    records as f64 / seconds
}

/// Reads every record of the log copy in `work`, as the materialiser polls.
async fn read(work: &Path) -> anyhow::Result<(Vec<Delivered>, serde_json::Value)> {
    let log = EmbeddedLog::open(&work.join("log"), EmbeddedConfig::default())?;
    let started = Instant::now();
    let mut sub = log.subscribe("bench", Arc::new(|_| 0)).await?;
    let max = QueryConfig::default().poll_records;
    let mut records = Vec::new();
    let mut polls = 0;
    loop {
        match sub.poll(max, Duration::ZERO).await? {
            Polled::Records(r) if r.is_empty() => break,
            Polled::Records(r) => records.extend(r),
            Polled::Assigned(_) | Polled::Revoked(_) | Polled::Joining => {}
        }
        polls += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let json = serde_json::json!({
        "records": records.len(),
        "polls": polls,
        "seconds": seconds,
        "records_per_s": rate(records.len(), seconds),
    });
    Ok((records, json))
}

/// Parses each record as the materialiser does, and nothing more.
fn parse(records: &[Delivered]) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let mut bytes = 0;
    for r in records {
        bytes += r.value.len();
        let ok = match r.stream.topic {
            Topic::Scans => serde_json::from_slice::<ScanRecord>(&r.value).is_ok(),
            Topic::Tickets => serde_json::from_slice::<TicketRecord>(&r.value).is_ok(),
            Topic::Rejected => serde_json::from_slice::<RejectedRecord>(&r.value).is_ok(),
        };
        ensure!(ok, "{} offset {} does not parse", r.stream, r.offset);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "records": records.len(),
        "bytes": bytes,
        "seconds": seconds,
        "records_per_s": rate(records.len(), seconds),
    }))
}

/// Rows in the committed files of every checkpoint under `data_dir`.
fn committed_rows(data_dir: &Path) -> anyhow::Result<u64> {
    let mut rows = 0;
    for entry in std::fs::read_dir(data_dir.join("checkpoints"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let manifest =
                read_manifest(&path)?.with_context(|| format!("{} vanished", path.display()))?;
            rows += manifest.files.iter().map(|f| f.rows).sum::<u64>();
        }
    }
    Ok(rows)
}

fn snapshot_rows(snapshot: &SharedSnapshot) -> usize {
    snapshot.get().tables.iter().map(|t| t.memory_rows()).sum()
}

async fn caught_up(progress: &mut watch::Receiver<Progress>) -> anyhow::Result<()> {
    tokio::time::timeout(REPLAY_LIMIT, progress.wait_for(|p| p.caught_up))
        .await
        .context("the replay did not catch up in time")?
        .context("the materialiser stopped before catching up")?;
    Ok(())
}

/// The materialiser alone on its own thread, as `Query::start` runs it.
async fn materialise(venue: &Arc<Venue>, work: &Path) -> anyhow::Result<serde_json::Value> {
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(
        &work.join("log"),
        EmbeddedConfig::default(),
    )?);
    let data_dir = work.to_path_buf();
    let snapshot = Arc::new(SharedSnapshot::default());
    let (progress_tx, mut progress) = watch::channel(Progress::default());
    let (stop, stopped) = watch::channel(false);
    let materialiser = Materialiser {
        venue: venue.clone(),
        log,
        data_dir: data_dir.clone(),
        group: "bench".into(),
        config: QueryConfig::default(),
        snapshot: snapshot.clone(),
        metrics: QueryMetrics::register(&Registry::new())?,
        progress: progress_tx,
    };
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(materialiser.run(stopped))
    });
    caught_up(&mut progress).await?;
    let ready = started.elapsed().as_secs_f64();
    let queryable = snapshot_rows(&snapshot);
    let flushing = Instant::now();
    stop.send_replace(true);
    match thread.join() {
        Ok(result) => result?,
        Err(_) => bail!("the materialiser thread panicked"),
    }
    let flush = flushing.elapsed().as_secs_f64();
    let rows = committed_rows(&data_dir)?;
    Ok(serde_json::json!({
        "rows": rows,
        "rows_queryable_when_caught_up": queryable,
        "replay_seconds": ready,
        "replay_rows_per_s": rate(rows as usize, ready),
        "flush_seconds": flush,
        "rows_per_s_incl_flush": rate(rows as usize, ready + flush),
    }))
}

/// What `footfall serve` starts for queries, then the replay.
async fn serve(venue: &Arc<Venue>, work: &Path) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(
        &work.join("log"),
        EmbeddedConfig::default(),
    )?);
    let opened = started.elapsed().as_secs_f64();
    let query = Query::start(QueryOptions {
        venue: venue.clone(),
        log,
        data_dir: work.to_path_buf(),
        group: "bench".into(),
        config: QueryConfig::default(),
        metrics: QueryMetrics::register(&Registry::new())?,
    })
    .await?;
    let start = started.elapsed().as_secs_f64();
    let mut progress = query.progress.clone();
    caught_up(&mut progress).await?;
    let ready = started.elapsed().as_secs_f64() - start;
    let queryable = snapshot_rows(&query.snapshot);
    let flushing = Instant::now();
    tokio::task::block_in_place(|| query.shutdown())?;
    let flush = flushing.elapsed().as_secs_f64();
    let rows = committed_rows(work)?;
    Ok(serde_json::json!({
        "rows": rows,
        "rows_queryable_when_caught_up": queryable,
        "start_seconds": start,
        "log_open_seconds": opened,
        "replay_seconds": ready,
        "replay_rows_per_s": rate(rows as usize, ready),
        "rows_per_s_incl_start": rate(rows as usize, start + ready),
        "flush_seconds": flush,
    }))
}
