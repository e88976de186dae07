//! The footfall service: ingest, query or both in one process, over the
//! embedded event log or Apache Kafka, on one port, with health endpoints
//! and Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use footfall_eventlog::EventLog;
use footfall_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use footfall_eventlog::kafka::{KafkaConfig, KafkaLog};
use footfall_ingest::{Ingest, IngestConfig, IngestMetrics, Pseudonymiser};
use footfall_query::{Query, QueryConfig, QueryMetrics, QueryOptions};
use footfall_schemas::Venue;

use crate::AppError;

/// Which event log the service runs on.
#[derive(Clone, Debug)]
pub enum LogChoice {
    /// On local disk in the data dir: one process does ingest and query.
    Embedded,
    /// On Apache Kafka: ingest workers and query instances may be separate
    /// processes (query instances share the data dir).
    Kafka(KafkaConfig),
}

/// Which halves of the service this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `POST /v1/events` only: a stateless ingest worker.
    Ingest,
    /// The materialiser and SQL only.
    Query,
    /// Both.
    Both,
}

impl Role {
    fn ingests(self) -> bool {
        matches!(self, Self::Ingest | Self::Both)
    }

    fn queries(self) -> bool {
        matches!(self, Self::Query | Self::Both)
    }
}

pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub venue: Arc<Venue>,
    pub role: Role,
    pub log: LogChoice,
    /// Consumer group of the query instances sharing the log's partitions.
    pub group: String,
    /// The pseudonymisation key file; `data_dir/pseudonym.key` when absent.
    /// Every ingest worker of a fair must use the same key.
    pub pseudonym_key: Option<PathBuf>,
    pub ingest: IngestConfig,
    pub query: QueryConfig,
    pub embedded: EmbeddedConfig,
    /// Tokens and roles; without them every route is open, so the server
    /// listens on loopback only.
    pub auth: Option<Arc<crate::auth::Auth>>,
}

impl ServeOptions {
    /// Ingest and query on the embedded log, with default settings.
    pub fn new(data_dir: PathBuf, listen: SocketAddr, venue: Arc<Venue>) -> Self {
        Self {
            data_dir,
            listen,
            venue,
            role: Role::Both,
            log: LogChoice::Embedded,
            group: "footfall-query".into(),
            pseudonym_key: None,
            ingest: IngestConfig::default(),
            query: QueryConfig::default(),
            embedded: EmbeddedConfig::default(),
            auth: None,
        }
    }
}

/// A started server: its address, and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), AppError>>,
}

impl Running {
    /// Stops accepting, answers what is in flight, flushes the materialiser.
    /// Fails if that last flush failed.
    pub async fn stop(self) -> Result<(), AppError> {
        let _ = self.stop.send(());
        self.done
            .await
            .map_err(|e| AppError::Config(format!("server task failed: {e}")))?
    }

    /// Waits until the server stops by itself (after `shutdown` resolves).
    pub async fn wait(self) -> Result<(), AppError> {
        self.done
            .await
            .map_err(|e| AppError::Config(format!("server task failed: {e}")))?
    }
}

/// The organizers' live page, built into the binary (no CDN at the venue).
const LIVE_PAGE: &str = include_str!("../dashboards/web/index.html");

struct Shared {
    registry: Registry,
    log: Arc<dyn EventLog>,
    query: Option<Arc<Query>>,
}

/// Opens the log, starts the parts of the service `options.role` names,
/// binds the port, and serves until `shutdown` resolves or [`Running::stop`]
/// is called. Fails if the data dir, the log or the port cannot be used.
pub async fn start(
    mut options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, AppError> {
    match &options.auth {
        None if !options.listen.ip().is_loopback() => {
            return Err(AppError::Config(format!(
                "{} is not a loopback address: without an auth file (--auth) footfall only listens on 127.0.0.1 or ::1",
                options.listen
            )));
        }
        None => tracing::warn!(
            "no auth file (--auth): every route is open to whoever reaches this machine's loopback, so footfall listens on loopback only"
        ),
        Some(auth) => tracing::info!(
            tokens = auth.len(),
            "access control on: every route but /healthz and /readyz needs a token"
        ),
    }
    std::fs::create_dir_all(&options.data_dir).map_err(AppError::io(format!(
        "cannot create the data dir {}",
        options.data_dir.display()
    )))?;
    // SQL reads Parquet files by absolute, normalised paths (a relative one,
    // or one with `..`, is not a path of the object store).
    options.data_dir = std::fs::canonicalize(&options.data_dir).map_err(AppError::io(format!(
        "cannot resolve the data dir {}",
        options.data_dir.display()
    )))?;
    let log: Arc<dyn EventLog> = match &options.log {
        LogChoice::Embedded if options.role != Role::Both => {
            return Err(AppError::Config(
                "the embedded log lives inside one process: run ingest and query apart only with --kafka"
                    .into(),
            ));
        }
        LogChoice::Embedded => Arc::new(EmbeddedLog::open(
            &options.data_dir.join("log"),
            options.embedded.clone(),
        )?),
        LogChoice::Kafka(config) => Arc::new(KafkaLog::connect(config.clone()).await?),
    };
    let registry = Registry::new();
    let mut app = Router::new();
    if options.role.ingests() {
        let key = options
            .pseudonym_key
            .clone()
            .unwrap_or_else(|| options.data_dir.join("pseudonym.key"));
        let pseudonymiser = Pseudonymiser::load_or_create(&key).map_err(AppError::io(format!(
            "cannot load the pseudonymisation key {}",
            key.display()
        )))?;
        let ingest = Arc::new(Ingest {
            venue: options.venue.clone(),
            log: log.clone(),
            pseudonymiser,
            config: options.ingest,
            metrics: IngestMetrics::register(&registry)?,
        });
        app = app.merge(footfall_ingest::router(ingest));
    }
    let query = if options.role.queries() {
        let query = Query::start(QueryOptions {
            venue: options.venue.clone(),
            log: log.clone(),
            data_dir: options.data_dir.clone(),
            group: options.group,
            config: options.query,
            metrics: QueryMetrics::register(&registry)?,
        })
        .await?;
        app = app
            .route("/", get(|| async { axum::response::Html(LIVE_PAGE) }))
            .merge(footfall_query::router(query.clone()));
        Some(query)
    } else {
        None
    };

    let shared = Arc::new(Shared {
        registry,
        log,
        query: query.clone(),
    });
    let app = app.merge(
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(shared),
    );
    let app = match options.auth {
        Some(auth) => crate::auth::protect(app, auth),
        None => app,
    };

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(AppError::io(format!("cannot listen on {}", options.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(AppError::io("cannot read the bound address"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let signal = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stopped => {}
            }
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await;
        // In-flight batches are answered; now flush what the materialiser holds.
        let flushed = match query {
            Some(query) => tokio::task::spawn_blocking(move || query.shutdown())
                .await
                .map_err(|e| AppError::Config(format!("shutdown task failed: {e}")))?,
            None => Ok(()),
        };
        served.map_err(AppError::io("the HTTP server failed"))?;
        flushed.map_err(AppError::io("the last flush failed"))
    });
    Ok(Running { addr, stop, done })
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if let Err(e) = shared.log.check().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("event log: {e}\n"));
    }
    if let Some(e) = shared.query.as_ref().and_then(|q| q.flush_error()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("materialiser cannot write Parquet (retrying): {e}\n"),
        );
    }
    if shared.query.as_ref().is_some_and(|q| !q.caught_up()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "materialiser catching up\n".to_owned(),
        );
    }
    (StatusCode::OK, "ready\n".to_owned())
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut out = Vec::new();
    match TextEncoder::new().encode(&shared.registry.gather(), &mut out) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            out,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
