//! Ingest: the HTTP edge where scanners and ticketing send events.
//!
//! A batch is decoded under size caps, split into events, each parsed and
//! checked against the venue and the clock, enriched (scanner → zone,
//! stand → pole), its badge pseudonymised, and appended to the event log
//! together with the rejected ones. The answer is sent only after the log
//! holds the accepted events. Ingest keeps no state of its own beyond the
//! pseudonym key, so several workers can run side by side.

mod batch;
pub mod config;
mod enrich;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod pseudonym;
mod routes;

#[cfg(test)]
mod proptests;

use std::sync::Arc;

use footfall_eventlog::EventLog;
use footfall_schemas::Venue;

pub use config::IngestConfig;
pub use error::IngestError;
pub use metrics::IngestMetrics;
pub use pseudonym::Pseudonymiser;
pub use routes::events::BatchAnswer;

/// Everything a request needs, shared by all requests.
pub struct Ingest {
    pub venue: Arc<Venue>,
    pub log: Arc<dyn EventLog>,
    pub pseudonymiser: Pseudonymiser,
    pub config: IngestConfig,
    pub metrics: IngestMetrics,
}

/// The ingest routes (`POST /v1/events`), to be merged into the server's router.
pub fn router(ingest: Arc<Ingest>) -> axum::Router {
    routes::router(ingest)
}
