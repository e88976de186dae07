//! The ingest edge without HTTP and without a log, for the fuzz target in
//! `fuzz/`: the same content-type check, decoding, splitting, parsing,
//! checks and enrichment the route runs, on the reference venue. Not an API
//! for anything else.

use bytes::Bytes;
use chrono::Utc;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use footfall_eventlog::{Append, Topic};
use footfall_schemas::Venue;
use footfall_schemas::record::format_ts;

use crate::enrich::Enricher;
use crate::routes::events::{Judged, check_content_type, judge_batch};
use crate::{IngestConfig, IngestError, Pseudonymiser};

/// What became of one event of a batch before the log.
#[derive(Debug)]
pub enum Outcome {
    /// Enriched, bound for this topic (the log may still call it a duplicate).
    Accepted(Topic),
    /// Refused with this code (`parse`, `schema`, ...) and message.
    Rejected { code: &'static str, message: String },
}

/// A judged batch: per event, in batch order, its outcome and the record
/// the route would append (the enriched event, or its rejected record).
#[derive(Debug)]
pub struct Batch {
    pub outcomes: Vec<Outcome>,
    pub records: Vec<Append>,
}

/// Judges a body as `POST /v1/events` does before the log, with these
/// `Content-Type` and `Content-Encoding` header values (raw bytes, as a
/// client may send them). Fails with the error the route would answer; a
/// header value HTTP cannot carry is `None`.
pub fn judge(
    body: &[u8],
    content_type: Option<&[u8]>,
    encoding: Option<&[u8]>,
    config: &IngestConfig,
) -> Result<Batch, IngestError> {
    static VENUE: OnceLock<(Venue, Pseudonymiser)> = OnceLock::new();
    let (venue, pseudonymiser) = VENUE.get_or_init(|| {
        (
            footfall_schemas::venue::reference(),
            Pseudonymiser::new(&[7u8; 32]),
        )
    });
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type.and_then(|v| HeaderValue::from_bytes(v).ok()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    check_content_type(&headers)?;
    if body.len() > config.max_body_bytes {
        return Err(IngestError::BodyTooLarge {
            limit: config.max_body_bytes,
        });
    }
    // The route reads the header the same way.
    let encoding = encoding
        .and_then(|v| HeaderValue::from_bytes(v).ok())
        .map(|v| v.to_str().unwrap_or("<not text>").to_owned());
    let received_at = Utc::now();
    let enricher = Enricher {
        venue,
        pseudonymiser,
        config,
        received_at,
        received_text: format_ts(received_at),
    };
    let Judged { appends, slots } =
        judge_batch(Bytes::copy_from_slice(body), encoding.as_deref(), &enricher)?;
    Ok(Batch {
        outcomes: slots
            .into_iter()
            .map(|slot| match slot {
                Ok(topic) => Outcome::Accepted(topic),
                Err(e) => Outcome::Rejected {
                    code: e.code.as_str(),
                    message: e.message,
                },
            })
            .collect(),
        records: appends,
    })
}
