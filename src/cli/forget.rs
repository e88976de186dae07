//! `footfall forget --badge ID`: a visitor's erasure request. Removes their
//! rows from every table (so from every view, report and export) and marks
//! their pseudonym so a replay of the log skips them. Run it with footfall
//! stopped; docs/operations.md says what it does not reach (the log).

use clap::Args;
use std::path::PathBuf;

use footfall_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use footfall_ingest::Pseudonymiser;
use footfall_schemas::ids::BadgeId;

use crate::AppError;

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// The badge id as printed on the badge (never stored; hashed here).
    #[arg(long)]
    pub badge: String,
    /// The data dir of the stopped server.
    #[arg(long, default_value = "./footfall-data", env = "FOOTFALL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The pseudonymisation key file the fair's ingest used. Default:
    /// `DATA_DIR/pseudonym.key`.
    #[arg(long, env = "FOOTFALL_PSEUDONYM_KEY")]
    pub pseudonym_key: Option<PathBuf>,
}

pub fn run(args: ForgetArgs) -> Result<(), AppError> {
    let badge =
        BadgeId::parse(&args.badge).map_err(|why| AppError::Config(format!("--badge: {why}")))?;
    let key = args
        .pseudonym_key
        .unwrap_or_else(|| args.data_dir.join("pseudonym.key"));
    if !key.is_file() {
        // Creating a new key would compute a pseudonym nobody has.
        return Err(AppError::Config(format!(
            "no pseudonymisation key at {}: give the fair's with --pseudonym-key",
            key.display()
        )));
    }
    let log_dir = args.data_dir.join("log");
    if log_dir.is_dir() {
        // The embedded log is locked while a server runs on this data dir.
        EmbeddedLog::open(&log_dir, EmbeddedConfig::default()).map_err(|e| {
            AppError::Config(format!(
                "stop footfall on {} first: {e}",
                args.data_dir.display()
            ))
        })?;
    }
    let pseudonymiser = Pseudonymiser::load_or_create(&key).map_err(AppError::io(format!(
        "cannot read the key {}",
        key.display()
    )))?;
    let pseudonym = pseudonymiser.pseudonym(&badge);
    let removed = footfall_query::materialise::forget(&args.data_dir, &pseudonym, badge.as_str())
        .map_err(AppError::io(format!(
        "erasing from the tables in {}",
        args.data_dir.display()
    )))?;
    println!(
        "forgot the badge: {} scans, {} tickets, {} rejected events removed ({} files rewritten)",
        removed.scans, removed.tickets, removed.rejected, removed.files
    );
    Ok(())
}
