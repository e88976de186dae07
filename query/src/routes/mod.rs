//! The query service's HTTP routes, one module per route.

pub mod reports;
pub mod sql;

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

use crate::Query;

pub(crate) fn router(query: Arc<Query>) -> Router {
    Router::new()
        .route("/v1/sql", post(sql::post_sql))
        .route("/v1/live", get(crate::live::routes::sse))
        .route("/v1/live/state", get(crate::live::routes::state))
        .with_state(query.clone())
        .merge(reports::router(query))
}
