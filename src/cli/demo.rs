//! `footfall demo`: the embedded default in one command. Starts the service
//! on the embedded log with the reference venue in a fresh data dir, runs
//! the simulator against it at a watchable speed, and prints where to look.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use footfall_sim::{SimConfig, Simulator};

use crate::AppError;
use crate::sender::Sender;
use crate::server::{self, ServeOptions};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data dir; a fresh one under the system's temp dir when absent.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Simulated seconds per second: 60 plays a fair hour in a minute.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fair days to play; 0 for the whole fair.
    #[arg(long, default_value_t = 0)]
    pub days: u32,
}

pub async fn run(args: DemoArgs) -> Result<(), AppError> {
    if args.speed <= 0.0 {
        return Err(AppError::Config("--speed must be positive".into()));
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        std::env::temp_dir().join(format!("footfall-demo-{stamp}-{}", std::process::id()))
    });
    let venue = super::load_venue(None)?;
    let running = server::start(
        ServeOptions::new(data_dir.clone(), args.listen, venue.clone()),
        super::termination(),
    )
    .await?;
    let base = format!("http://{}", running.addr);
    println!(
        "footfall demo: {} ({} days), data in {}",
        venue.name,
        venue.days.len(),
        data_dir.display()
    );
    println!("  live page:  {base}/");
    println!("  metrics:    {base}/metrics");
    println!(
        "  SQL:        footfall sql --server {base} \"SELECT level, zone_id, sum(entries) FROM footfall_hourly GROUP BY 1,2 ORDER BY 3 DESC LIMIT 10\""
    );
    println!("  simulator:  {}x real time; Ctrl-C stops", args.speed);

    let config = SimConfig {
        seed: args.seed,
        days: args.days,
        ..SimConfig::default()
    };
    let feeder = tokio::spawn(feed(venue, config, base.clone(), args.speed));
    let result = running.wait().await;
    feeder.abort();
    result
}

async fn feed(
    venue: std::sync::Arc<footfall_schemas::Venue>,
    config: SimConfig,
    base: String,
    speed: f64,
) {
    let mut sim = match Simulator::new(&venue, config) {
        Ok(sim) => sim,
        Err(e) => {
            tracing::error!(error = %e, "the simulator cannot start");
            return;
        }
    };
    let mut sender = Sender::new(
        std::slice::from_ref(&base),
        200,
        Some(speed),
        Duration::from_secs(600),
    );
    // Nights and the weeks of online sales before the fair are skipped.
    sender.max_idle = Some(Duration::from_secs(5));
    sender.fast_until = venue
        .days
        .first()
        .map(|d| venue.opening(d).0 - chrono::Duration::minutes(10));
    while let Some(chunk) = sim.next_chunk() {
        for line in chunk {
            if let Err(e) = sender.push(line).await {
                tracing::error!(error = %e, "the simulator stopped sending");
                return;
            }
        }
    }
    if let Err(e) = sender.flush().await {
        tracing::error!(error = %e, "the simulator stopped sending");
        return;
    }
    let s = &sender.stats;
    tracing::info!(
        lines = s.lines,
        accepted = s.accepted,
        rejected = s.rejected,
        "the simulated fair is over"
    );
}
