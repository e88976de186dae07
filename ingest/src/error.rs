//! Ingest's errors and its HTTP error boundary.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use footfall_eventlog::LogError;

/// Why a whole batch was refused. Per-event problems are not errors: they are
/// answered event by event.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// User: the body is larger than the cap. Retrying the same body fails.
    #[error("the body is larger than {limit} bytes; send smaller batches")]
    BodyTooLarge { limit: usize },
    /// User: the body decompresses past the cap. Retrying fails.
    #[error("the body decompresses to more than {limit} bytes; send smaller batches")]
    DecompressedTooLarge { limit: usize },
    /// User: the gzip stream is corrupt. Retrying the same body fails.
    #[error("the gzip body cannot be decompressed: {0}")]
    BadGzip(String),
    /// User: a `Content-Encoding` other than gzip or identity.
    #[error("Content-Encoding {0:?} is not supported; use gzip or none")]
    UnsupportedEncoding(String),
    /// User: a `Content-Type` that is not JSON or NDJSON.
    #[error("Content-Type {0:?} is not supported; send application/x-ndjson or application/json")]
    UnsupportedMediaType(String),
    /// User: no event in the body.
    #[error("the batch holds no event")]
    EmptyBatch,
    /// User: more events than one batch may hold.
    #[error("the batch holds more than {limit} events; split it")]
    TooManyEvents { limit: usize },
    /// User: a JSON array that does not parse, so its events cannot be told apart.
    #[error("the batch cannot be split into events: {0}")]
    MalformedBatch(String),
    /// User: reading the body failed (client went away mid-body, say).
    #[error("the body could not be read: {0}")]
    BodyRead(String),
    /// External: the event log did not take the batch; nothing was
    /// accepted. Retry the same batch after `Retry-After`.
    #[error("the event log is not taking events now; retry the same batch")]
    LogUnavailable {
        source: LogError,
        retry_after_s: u32,
    },
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BodyTooLarge { .. }
            | Self::DecompressedTooLarge { .. }
            | Self::TooManyEvents { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedEncoding(_) | Self::UnsupportedMediaType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::BadGzip(_) | Self::EmptyBatch | Self::MalformedBatch(_) | Self::BodyRead(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::LogUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable word for clients and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } | Self::DecompressedTooLarge { .. } => "too_large",
            Self::TooManyEvents { .. } => "too_many_events",
            Self::BadGzip(_) => "bad_gzip",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::EmptyBatch => "empty_batch",
            Self::MalformedBatch(_) => "malformed_batch",
            Self::BodyRead(_) => "body_read",
            Self::LogUnavailable { .. } => "log_unavailable",
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::LogUnavailable { source, .. } = &self {
            tracing::warn!(error = %source, "batch refused: event log unavailable");
        }
        let body = serde_json::json!({ "error": self.to_string(), "code": self.code() });
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::LogUnavailable { retry_after_s, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}
