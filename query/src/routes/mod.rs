//! The query service's HTTP routes, one module per route.

pub mod sql;

use axum::Router;
use axum::routing::post;
use std::sync::Arc;

use crate::Query;

pub(crate) fn router(query: Arc<Query>) -> Router {
    Router::new()
        .route("/v1/sql", post(sql::post_sql))
        .with_state(query)
}
