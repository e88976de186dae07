//! `footfall sim`: simulates the fair and writes the events to a file or
//! sends them to a server, optionally with the truth of `footfall_hourly`.

use clap::Args;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use footfall_sim::{Faults, SimConfig, Simulator};

use crate::AppError;
use crate::sender::Sender;

#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Fair days to simulate, from the first; 0 for all of them.
    #[arg(long, default_value_t = 0)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Visitors on an ordinary day (default: from the venue's capacity).
    #[arg(long)]
    pub visitors_per_day: Option<u32>,
    /// Write the events (NDJSON) here.
    #[arg(long, conflicts_with = "target")]
    pub out: Option<PathBuf>,
    /// Send the events to this server (e.g. http://127.0.0.1:8080); several
    /// (repeated or comma-separated) take the batches in turn.
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// With --target: simulated seconds per second, or `max`.
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// With --target: lines per batch.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// With --target: how long to keep retrying a batch that is not acknowledged.
    #[arg(long, default_value_t = 120)]
    pub retry_for_s: u64,
    /// Write the correct `footfall_hourly` for what was sent (NDJSON).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Scanner faults off (no retries, outages, skew or malformed lines).
    #[arg(long)]
    pub no_faults: bool,
    /// Share of scans sent twice.
    #[arg(long)]
    pub retry_rate: Option<f64>,
    /// Share of scanners that go offline for a while and upload late.
    #[arg(long)]
    pub offline_rate: Option<f64>,
    /// Share of scanners whose clock is off by up to a few minutes.
    #[arg(long)]
    pub skewed_clock_rate: Option<f64>,
    /// Share of lines that are malformed.
    #[arg(long)]
    pub malformed_rate: Option<f64>,
}

impl SimArgs {
    pub fn config(&self) -> SimConfig {
        let mut faults = if self.no_faults {
            Faults::none()
        } else {
            Faults::default()
        };
        if let Some(r) = self.retry_rate {
            faults.retry_rate = r;
        }
        if let Some(r) = self.offline_rate {
            faults.offline_rate = r;
        }
        if let Some(r) = self.skewed_clock_rate {
            faults.skewed_clock_rate = r;
        }
        if let Some(r) = self.malformed_rate {
            faults.malformed_rate = r;
        }
        SimConfig {
            seed: self.seed,
            days: self.days,
            visitors_per_day: self.visitors_per_day,
            faults,
            ..SimConfig::default()
        }
    }

    /// `max` → `None`; a positive number → that speed.
    pub fn speed(&self) -> Result<Option<f64>, AppError> {
        match self.speed.as_str() {
            "max" => Ok(None),
            s => match s.parse::<f64>() {
                Ok(x) if x > 0.0 => Ok(Some(x)),
                _ => Err(AppError::Config(format!(
                    "--speed must be a positive number or max, got {s:?}"
                ))),
            },
        }
    }
}

pub async fn run(args: SimArgs) -> Result<(), AppError> {
    let venue = super::load_venue(None)?;
    let mut sim =
        Simulator::new(&venue, args.config()).map_err(|e| AppError::Config(e.to_string()))?;
    let started = Instant::now();
    let mut progress = Progress::new();
    match (&args.out, args.target.as_slice()) {
        (Some(path), []) => {
            let file = std::fs::File::create(path)
                .map_err(AppError::io(format!("cannot create {}", path.display())))?;
            let mut out = BufWriter::new(file);
            while let Some(lines) = sim
                .write_chunk(&mut out)
                .map_err(AppError::io("writing events"))?
            {
                progress.tick(lines as u64, None);
            }
            out.flush().map_err(AppError::io("writing events"))?;
        }
        (None, targets @ [_, ..]) => {
            let mut sender = Sender::new(
                targets,
                args.batch,
                args.speed()?,
                Duration::from_secs(args.retry_for_s),
            );
            while let Some(chunk) = sim.next_chunk() {
                let n = chunk.len() as u64;
                let last = chunk.last().map(|l| l.send_at);
                for line in chunk {
                    sender.push(line).await?;
                }
                progress.tick(n, last);
            }
            sender.flush().await?;
            let s = &sender.stats;
            eprintln!(
                "sent {} lines in {} batches: {} accepted, {} duplicates, {} rejected, {} batches resent",
                s.lines, s.batches, s.accepted, s.duplicates, s.rejected, s.retries
            );
        }
        _ => return Err(AppError::Config("give --out FILE or --target URL".into())),
    }
    if let Some(path) = &args.truth {
        let file = std::fs::File::create(path)
            .map_err(AppError::io(format!("cannot create {}", path.display())))?;
        let mut out = BufWriter::new(file);
        sim.truth()
            .write_ndjson(&mut out)
            .map_err(AppError::io("writing the truth"))?;
        out.flush().map_err(AppError::io("writing the truth"))?;
    }
    let stats = sim.stats();
    eprintln!(
        "simulated {} days in {:.1} s: {} lines ({} scans, {} tickets issued, {} cancelled, {} retries, {} malformed, {} late uploads)",
        stats.days,
        started.elapsed().as_secs_f64(),
        stats.lines,
        stats.scans,
        stats.tickets_issued,
        stats.tickets_cancelled,
        stats.retries,
        stats.malformed,
        stats.late_uploads
    );
    Ok(())
}

/// A line on stderr every couple of seconds for long runs.
struct Progress {
    lines: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            lines: 0,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    fn tick(&mut self, lines: u64, at: Option<chrono::DateTime<chrono::Utc>>) {
        self.lines += lines;
        if self.last.elapsed() >= Duration::from_secs(2) {
            self.last = Instant::now();
            let rate = self.lines as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let at = at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            eprintln!(
                "sim: {} lines ({rate:.0}/s), simulated clock at {at}",
                self.lines
            );
        }
    }
}
