//! `footfall serve`.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::AppError;
use crate::server::{self, ServeOptions};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the event log, Parquet files and checkpoints live.
    #[arg(long, default_value = "./footfall-data", env = "FOOTFALL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", env = "FOOTFALL_LISTEN")]
    pub listen: SocketAddr,
    /// Venue file (TOML); the reference fair when absent.
    #[arg(long, env = "FOOTFALL_VENUE")]
    pub venue: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> Result<(), AppError> {
    let venue = super::load_venue(args.venue.as_deref())?;
    let running = server::start(
        ServeOptions::new(args.data_dir.clone(), args.listen, venue.clone()),
        super::termination(),
    )
    .await?;
    tracing::info!(venue = %venue.id, data_dir = %args.data_dir.display(), "footfall serving on the embedded log");
    // The last line of stdout names the address, for scripts and tests.
    println!("footfall listening on http://{}", running.addr);
    running.wait().await
}
