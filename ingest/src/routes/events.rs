//! `POST /v1/events`: a batch of events in, one answer per event out, sent
//! after the log holds the accepted ones.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use footfall_eventlog::{Append, Appended, Topic};
use footfall_schemas::events::EventError;
use footfall_schemas::record::format_ts;

use crate::batch;
use crate::enrich::{Enricher, Verdict};
use crate::{Ingest, IngestError};

/// The answer to a batch.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BatchAnswer {
    /// Events now in the log for the first time.
    pub accepted: usize,
    /// Events whose `event_id` was already in the log: nothing written.
    pub duplicates: usize,
    /// Events refused; each has an entry in `errors`.
    pub rejected: usize,
    pub errors: Vec<EventErrorAnswer>,
}

#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct EventErrorAnswer {
    /// 0-based position of the event in the batch (blank lines not counted).
    pub index: usize,
    pub event_id: Option<String>,
    pub code: String,
    pub message: String,
}

pub(crate) async fn post_events(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match handle(&ingest, &headers, body).await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(e) => e.into_response(),
    };
    let status = response.status().as_u16().to_string();
    ingest.metrics.requests.with_label_values(&[&status]).inc();
    ingest
        .metrics
        .request_duration
        .with_label_values(&[&status])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Body,
) -> Result<BatchAnswer, IngestError> {
    check_content_type(headers)?;
    let limit = ingest.config.max_body_bytes;
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes reports the cap through a LengthLimitError in its chain.
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            IngestError::BodyTooLarge { limit }
        } else {
            IngestError::BodyRead(e.to_string())
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("<not text>"));
    let received_at = Utc::now();
    let enricher = Enricher {
        venue: &ingest.venue,
        pseudonymiser: &ingest.pseudonymiser,
        config: &ingest.config,
        received_at,
        received_text: format_ts(received_at),
    };
    let Judged { appends, slots } = judge_batch(body, encoding, &enricher)?;

    let append_started = Instant::now();
    let outcomes = ingest.log.append(appends).await;
    let outcome_label = if outcomes.is_ok() { "ok" } else { "error" };
    ingest
        .metrics
        .append_duration
        .with_label_values(&[outcome_label])
        .observe(append_started.elapsed().as_secs_f64());
    let outcomes = outcomes.map_err(|source| IngestError::LogUnavailable {
        source,
        retry_after_s: ingest.config.retry_after_s,
    })?;

    Ok(answer(ingest, slots, &outcomes))
}

/// A batch judged, before the log: per event, in order, its record (the
/// enriched event, or its rejected-stream record) and its topic or why it
/// was refused. Accepted and rejected go to the log in one append, so the
/// answer covers both.
pub(crate) struct Judged {
    pub appends: Vec<Append>,
    pub slots: Vec<Result<Topic, EventError>>,
}

/// Decodes, splits and judges a body: everything the route does before the
/// log, shared with [`crate::fuzzing`] so the fuzz target runs this code.
pub(crate) fn judge_batch(
    body: Bytes,
    encoding: Option<&str>,
    enricher: &Enricher<'_>,
) -> Result<Judged, IngestError> {
    let body = batch::decode(body, encoding, enricher.config)?;
    let events = batch::split(&body, enricher.config)?;
    let mut judged = Judged {
        appends: Vec::with_capacity(events.len()),
        slots: Vec::with_capacity(events.len()),
    };
    for raw in &events {
        match enricher.judge(raw) {
            Verdict::Accept(append) => {
                judged.slots.push(Ok(append.topic));
                judged.appends.push(append);
            }
            Verdict::Reject(error) => {
                judged.appends.push(enricher.rejected(raw, &error));
                judged.slots.push(Err(error));
            }
        }
    }
    Ok(judged)
}

fn answer(
    ingest: &Ingest,
    slots: Vec<Result<Topic, EventError>>,
    outcomes: &[Appended],
) -> BatchAnswer {
    let mut answer = BatchAnswer {
        accepted: 0,
        duplicates: 0,
        rejected: 0,
        errors: Vec::new(),
    };
    let m = &ingest.metrics;
    debug_assert_eq!(slots.len(), outcomes.len());
    for (index, (slot, outcome)) in slots.into_iter().zip(outcomes).enumerate() {
        match slot {
            Ok(topic) => {
                let kind = if topic == Topic::Scans {
                    "badge_scan"
                } else {
                    "ticket"
                };
                if *outcome == Appended::Duplicate {
                    answer.duplicates += 1;
                    m.events.with_label_values(&[kind, "duplicate"]).inc();
                } else {
                    answer.accepted += 1;
                    m.events.with_label_values(&[kind, "accepted"]).inc();
                }
            }
            Err(error) => {
                answer.rejected += 1;
                m.events.with_label_values(&["unknown", "rejected"]).inc();
                m.rejected.with_label_values(&[error.code.as_str()]).inc();
                answer.errors.push(EventErrorAnswer {
                    index,
                    event_id: error.event_id,
                    code: error.code.as_str().to_owned(),
                    message: error.message,
                });
            }
        }
    }
    answer
}

/// JSON and NDJSON in their usual spellings, plain text, or no type at all
/// (curl's default form type is refused: it mangles newlines).
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), IngestError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("<not text>");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json"
        | "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines"
        | "text/plain"
        | "" => Ok(()),
        _ => Err(IngestError::UnsupportedMediaType(
            footfall_schemas::events::truncate(text, 80).to_owned(),
        )),
    }
}
