//! `GET /v1/reports/stands/{stand_id}` and
//! `GET /v1/reports/exhibitors/{exhibitor}`: sponsor reports; `?format=`
//! html (the default), csv or json. An unknown stand or exhibitor is a 404
//! with a message.

use axum::Router;
use axum::extract::{Path, Query as Params, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::sync::Arc;

use crate::Query;
use crate::error::QueryError;
use crate::report::{self, Reports, StandReport};

struct ReportState {
    query: Arc<Query>,
    reports: Reports,
}

#[derive(Deserialize)]
pub(crate) struct ReportParams {
    format: Option<String>,
}

pub(crate) fn router(query: Arc<Query>) -> Router {
    Router::new()
        .route("/v1/reports/stands/{stand_id}", get(stand))
        .route("/v1/reports/exhibitors/{exhibitor}", get(exhibitor))
        .with_state(Arc::new(ReportState {
            query,
            reports: Reports::default(),
        }))
}

async fn stand(
    State(state): State<Arc<ReportState>>,
    Path(stand_id): Path<String>,
    Params(params): Params<ReportParams>,
) -> Response {
    let answer = async {
        let format = ReportFormat::parse(params.format.as_deref())?;
        let report = state.reports.stand(&state.query, &stand_id).await?;
        Ok::<_, QueryError>(format.respond(&report))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

async fn exhibitor(
    State(state): State<Arc<ReportState>>,
    Path(exhibitor): Path<String>,
    Params(params): Params<ReportParams>,
) -> Response {
    let answer = async {
        let format = ReportFormat::parse(params.format.as_deref())?;
        let report = state.reports.exhibitor(&state.query, &exhibitor).await?;
        Ok::<_, QueryError>(format.respond(&report))
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Clone, Copy)]
enum ReportFormat {
    Html,
    Csv,
    Json,
}

impl ReportFormat {
    fn parse(text: Option<&str>) -> Result<Self, QueryError> {
        match text {
            None | Some("html") => Ok(Self::Html),
            Some("csv") => Ok(Self::Csv),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(QueryError::Sql(format!(
                "unknown report format {:?}; use html, csv or json",
                footfall_schemas::events::truncate(other, 40)
            ))),
        }
    }

    fn respond(self, report: &StandReport) -> Response {
        let (content_type, body) = match self {
            Self::Html => ("text/html; charset=utf-8", report::html(report)),
            Self::Csv => ("text/csv; charset=utf-8", report::csv(report)),
            Self::Json => (
                "application/json",
                // A report is plain data: encoding it cannot fail.
                serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into()),
            ),
        };
        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}
