//! `POST /v1/sql`: the body is the SQL text; `?format=` picks the answer's
//! encoding (json by default).

use axum::Extension;
use axum::extract::{Query as Params, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

use crate::Query;
use crate::engine::Caller;
use crate::error::QueryError;
use crate::format::Format;

/// Longest SQL text accepted.
const MAX_SQL_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
pub(crate) struct SqlParams {
    format: Option<String>,
}

pub(crate) async fn post_sql(
    State(query): State<Arc<Query>>,
    Params(params): Params<SqlParams>,
    caller: Option<Extension<Caller>>,
    body: String,
) -> Response {
    let caller = caller.map_or(Caller::ANYONE, |Extension(c)| c);
    match answer(&query, params, &body, caller).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    query: &Query,
    params: SqlParams,
    sql: &str,
    caller: Caller,
) -> Result<Response, QueryError> {
    let format = Format::parse(params.format.as_deref())?;
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::Sql(format!(
            "the SQL text is longer than {MAX_SQL_BYTES} bytes"
        )));
    }
    if sql.trim().is_empty() {
        return Err(QueryError::Sql("the body must hold the SQL text".into()));
    }
    let result = query.engine.query_as(sql, caller).await?;
    let body = format.encode(&result)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response())
}
