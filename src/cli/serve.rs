//! `footfall serve`, `footfall ingest` and `footfall query`: the service,
//! whole or in halves, on the embedded log or on Kafka.

use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use footfall_eventlog::embedded::EmbeddedConfig;
use footfall_eventlog::kafka::KafkaConfig;
use footfall_ingest::IngestConfig;
use footfall_query::QueryConfig;

use crate::AppError;
use crate::server::{self, LogChoice, Role, ServeOptions};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the event log (embedded), Parquet files, checkpoints and the
    /// pseudonymisation key live. Query instances on Kafka share it.
    #[arg(long, default_value = "./footfall-data", env = "FOOTFALL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", env = "FOOTFALL_LISTEN")]
    pub listen: SocketAddr,
    /// Venue file (TOML); the reference fair when absent.
    #[arg(long, env = "FOOTFALL_VENUE")]
    pub venue: Option<PathBuf>,
    /// Run on Apache Kafka at these brokers (`host:port`, comma-separated)
    /// instead of the embedded log.
    #[arg(long, env = "FOOTFALL_KAFKA")]
    pub kafka: Option<String>,
    /// Settings file (TOML) with `[ingest]`, `[query]`, `[embedded]` and
    /// `[kafka]` sections; every key is optional (see README).
    #[arg(long, env = "FOOTFALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Consumer group the query instances share.
    #[arg(long, default_value = "footfall-query", env = "FOOTFALL_GROUP")]
    pub group: String,
    /// Pseudonymisation key file (hex), the same for every ingest worker of
    /// a fair; created when missing. Default: `DATA_DIR/pseudonym.key`.
    #[arg(long, env = "FOOTFALL_PSEUDONYM_KEY")]
    pub pseudonym_key: Option<PathBuf>,
    /// Auth file (TOML) of hashed tokens and their roles (see README,
    /// "Access control"). Without one, footfall listens on loopback only.
    #[arg(long, env = "FOOTFALL_AUTH")]
    pub auth: Option<PathBuf>,
}

/// The settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    ingest: IngestConfig,
    #[serde(default)]
    query: QueryConfig,
    #[serde(default)]
    embedded: EmbeddedConfig,
    /// Kafka settings; `bootstrap_servers` may come from `--kafka` instead.
    kafka: Option<toml::Table>,
}

impl Settings {
    fn load(path: Option<&Path>) -> Result<Self, AppError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(AppError::io(format!("cannot read {}", path.display())))?;
        toml::from_str(&text).map_err(|e| AppError::Config(format!("{}: {e}", path.display())))
    }

    /// The log to run on: Kafka when `--kafka` or a `[kafka]` section says
    /// so (`--kafka` names the brokers over the file), else embedded.
    fn log(&self, kafka: Option<&str>) -> Result<LogChoice, AppError> {
        let mut table = match (&self.kafka, kafka) {
            (None, None) => return Ok(LogChoice::Embedded),
            (Some(table), _) => table.clone(),
            (None, Some(_)) => toml::Table::new(),
        };
        if let Some(brokers) = kafka {
            table.insert("bootstrap_servers".into(), brokers.into());
        }
        let mut config: KafkaConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| AppError::Config(format!("[kafka] settings: {e}")))?;
        // One limit for the rejected raw text, in the log as in the tables.
        config.rejected_retention_ms = Some(self.query.rejected_retention_s.saturating_mul(1000));
        Ok(LogChoice::Kafka(config))
    }
}

pub async fn run(args: ServeArgs, role: Role) -> Result<(), AppError> {
    let venue = super::load_venue(args.venue.as_deref())?;
    let settings = Settings::load(args.config.as_deref())?;
    let log = settings.log(args.kafka.as_deref())?;
    let auth = match &args.auth {
        Some(path) => Some(std::sync::Arc::new(crate::auth::Auth::load(path, &venue)?)),
        None => None,
    };
    let on = match &log {
        LogChoice::Embedded => "the embedded log".to_owned(),
        LogChoice::Kafka(k) => format!("kafka at {}", k.bootstrap_servers),
    };
    let options = ServeOptions {
        role,
        log,
        group: args.group,
        pseudonym_key: args.pseudonym_key,
        ingest: settings.ingest,
        query: settings.query,
        embedded: settings.embedded,
        auth,
        ..ServeOptions::new(args.data_dir.clone(), args.listen, venue.clone())
    };
    let running = server::start(options, super::termination()).await?;
    tracing::info!(venue = %venue.id, data_dir = %args.data_dir.display(), ?role, "footfall serving on {on}");
    // The last line of stdout names the address, for scripts and tests.
    println!("footfall listening on http://{}", running.addr);
    running.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_comes_from_the_flag_or_the_file() {
        let none = Settings::default();
        assert!(matches!(none.log(None), Ok(LogChoice::Embedded)));
        let Ok(LogChoice::Kafka(k)) = none.log(Some("b:9092")) else {
            panic!("--kafka alone runs on kafka");
        };
        assert_eq!(
            k,
            KafkaConfig {
                rejected_retention_ms: Some(30 * 24 * 3600 * 1000),
                ..KafkaConfig::new("b:9092")
            }
        );

        let file: Settings = toml::from_str(
            "[query]\nflush_interval_ms = 1000\nrejected_retention_s = 60\n[kafka]\nbootstrap_servers = \"a:1\"\ntopic_suffix = \".x\"\n",
        )
        .unwrap();
        assert_eq!(file.query.flush_interval_ms, 1000);
        let Ok(LogChoice::Kafka(k)) = file.log(Some("b:2")) else {
            panic!("a [kafka] section runs on kafka");
        };
        assert_eq!(
            (k.bootstrap_servers.as_str(), k.topic_suffix.as_str()),
            ("b:2", ".x")
        );
        assert_eq!(k.rejected_retention_ms, Some(60_000));

        let typo: Settings =
            toml::from_str("[kafka]\nbootstrap_servers = \"a:1\"\nlinger = 1\n").unwrap();
        assert!(typo.log(None).is_err(), "unknown kafka keys are refused");
        assert!(toml::from_str::<Settings>("[qeury]\n").is_err());
        let no_brokers: Settings = toml::from_str("[kafka]\ntopic_suffix = \".x\"\n").unwrap();
        assert!(no_brokers.log(None).is_err());
    }

    #[test]
    fn the_embedded_section_sets_the_log_and_refuses_typos() {
        assert_eq!(Settings::default().embedded.cache_mib, 64);
        let set: Settings = toml::from_str("[embedded]\ncache_mib = 256\n").unwrap();
        assert_eq!(set.embedded.cache_mib, 256);
        assert_eq!(
            set.embedded.queue_batches, 256,
            "other keys keep their defaults"
        );
        assert!(toml::from_str::<Settings>("[embedded]\ncache_mb = 256\n").is_err());
    }
}
