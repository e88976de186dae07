//! Ingest's HTTP routes, one module per route.

pub mod events;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use std::sync::Arc;

use crate::Ingest;

pub(crate) fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/v1/events", post(events::post_events))
        // The handler reads the body itself under its own cap (config).
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}
