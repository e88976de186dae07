//! Query: materialises the event log into Arrow and Parquet and answers SQL
//! over it with DataFusion.
//!
//! The materialiser runs on a thread of its own and publishes immutable
//! snapshots; SQL runs on threads of its own over those snapshots. Neither
//! blocks the other, and neither blocks ingest.

pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod format;
pub mod live;
pub mod materialise;
pub mod metrics;
pub mod report;
mod routes;
pub mod snapshot;
pub mod table_kind;

use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

use footfall_eventlog::EventLog;
use footfall_schemas::Venue;

pub use config::QueryConfig;
pub use engine::{Caller, QueryResult, SqlEngine};
pub use error::QueryError;
pub use metrics::QueryMetrics;

use materialise::{Materialiser, Progress};
use snapshot::SharedSnapshot;

/// The running query service.
pub struct Query {
    pub venue: Arc<Venue>,
    pub engine: SqlEngine,
    pub snapshot: Arc<SharedSnapshot>,
    pub progress: watch::Receiver<Progress>,
    /// The live floor behind `/metrics` and `/v1/live`.
    pub live: live::Live,
    shutdown: watch::Sender<bool>,
    materialiser: std::sync::Mutex<Option<std::thread::JoinHandle<std::io::Result<()>>>>,
}

/// What the query service needs to start.
pub struct QueryOptions {
    pub venue: Arc<Venue>,
    pub log: Arc<dyn EventLog>,
    pub data_dir: PathBuf,
    /// Consumer group of the materialisers sharing the log's partitions.
    pub group: String,
    pub config: QueryConfig,
    pub metrics: QueryMetrics,
}

impl Query {
    /// Starts the materialiser and builds the SQL engine. Fails if the SQL
    /// engine cannot be built or the materialiser thread cannot start.
    pub async fn start(options: QueryOptions) -> Result<Arc<Self>, QueryError> {
        let snapshot = Arc::new(SharedSnapshot::default());
        let engine = SqlEngine::new(
            &options.venue,
            &options.data_dir.join("spill"),
            snapshot.clone(),
            &options.config,
            options.metrics.clone(),
        )
        .await?;
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let live = live::Live::start(live::LiveOptions {
            venue: options.venue.clone(),
            ctx: engine.context().clone(),
            snapshot: snapshot.clone(),
            progress: progress.clone(),
            log: options.log.clone(),
            config: options.config.clone(),
            metrics: options.metrics.clone(),
        })
        .map_err(|e| QueryError::Internal(format!("cannot start the live state: {e}")))?;
        let materialiser = Materialiser {
            venue: options.venue.clone(),
            log: options.log,
            data_dir: options.data_dir,
            group: options.group,
            config: options.config,
            snapshot: snapshot.clone(),
            metrics: options.metrics,
            progress: progress_tx,
        };
        let thread = std::thread::Builder::new()
            .name("footfall-materialiser".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let result = runtime.block_on(materialiser.run(shutdown_rx));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "the materialiser stopped");
                }
                result
            })
            .map_err(|e| QueryError::Internal(format!("cannot start the materialiser: {e}")))?;
        Ok(Arc::new(Self {
            venue: options.venue,
            engine,
            snapshot,
            progress,
            live,
            shutdown,
            materialiser: std::sync::Mutex::new(Some(thread)),
        }))
    }

    /// Whether the materialiser is running and has read all it has seen.
    pub fn caught_up(&self) -> bool {
        let running = self
            .materialiser
            .lock()
            .map(|t| t.as_ref().is_some_and(|t| !t.is_finished()))
            .unwrap_or(false);
        running && self.progress.borrow().caught_up
    }

    /// Why the materialiser cannot flush to Parquet now, while it cannot.
    pub fn flush_error(&self) -> Option<String> {
        self.progress.borrow().flush_error.clone()
    }

    /// Stops the materialiser after a last flush and checkpoint; waits for it.
    /// Fails if that last flush failed.
    pub fn shutdown(&self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        let thread = self.materialiser.lock().ok().and_then(|mut t| t.take());
        match thread.map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("the materialiser thread panicked")),
            None => Ok(()),
        }
    }
}

/// The query routes (`POST /v1/sql`), to be merged into the server's router.
pub fn router(query: Arc<Query>) -> axum::Router {
    routes::router(query)
}
