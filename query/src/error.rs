//! The query service's errors and its HTTP error boundary.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// User: the SQL does not parse or plan (unknown table, bad syntax), or
    /// fails on the data (a bad cast). Retrying the same SQL fails again.
    #[error("{0}")]
    Sql(String),
    /// User: a statement that would change something or read host files.
    #[error("only read-only queries are allowed: {0}")]
    NotReadOnly(String),
    /// User: the query needed more memory than the limit. Narrow it.
    #[error("the query needs more memory than its limit: {0}")]
    MemoryLimit(String),
    /// User: the query ran past the time limit. Narrow it.
    #[error("the query ran longer than {0} ms and was stopped")]
    Timeout(u64),
    /// User: the result is too large to send in one answer.
    #[error(
        "the result is larger than {0} bytes; add a LIMIT, aggregate, or use `footfall export`"
    )]
    ResultTooLarge(usize),
    /// User: an unknown `format` parameter.
    #[error("unknown format {0:?}; use json, csv, arrow or parquet")]
    UnknownFormat(String),
    /// User: an unknown stand or exhibitor in a report request.
    #[error("{0}")]
    NotFound(String),
    /// User: the caller's role may not read what the query reads.
    #[error("{0}")]
    Forbidden(String),
    /// Internal: a bug or an I/O failure on our side; details are logged,
    /// not sent. A retry may help if it was I/O.
    #[error("internal error")]
    Internal(String),
}

/// Whether Arrow failed writing a spill file because the spill cap was
/// met. DataFusion 55's spill writer refuses the write with an
/// `io::Error::other` holding only its message (sorts and groupings both
/// met it in `tests/sql_abuse.rs`), so the message is all there is to know
/// it by; that test fails if it changes.
fn spill_cap_met(e: &arrow::error::ArrowError) -> bool {
    let arrow::error::ArrowError::IoError(_, io) = e else {
        return false;
    };
    io.get_ref().is_some_and(|inner| {
        inner
            .to_string()
            .starts_with("The used disk space during the spilling process has exceeded")
    })
}

impl QueryError {
    /// Sorts a DataFusion error by whose fault it is.
    pub fn from_datafusion(e: DataFusionError) -> Self {
        let root = e.find_root();
        match root {
            DataFusionError::ResourcesExhausted(m) => Self::MemoryLimit(m.clone()),
            // The spill cap, met while Arrow's IPC writer writes a spill file.
            DataFusionError::ArrowError(arrow, _) if spill_cap_met(arrow) => {
                Self::MemoryLimit(root.to_string())
            }
            DataFusionError::Plan(m)
                if m.starts_with("DDL not supported")
                    || m.starts_with("DML not supported")
                    || m.starts_with("Statement not supported") =>
            {
                Self::NotReadOnly(m.clone())
            }
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_)
            | DataFusionError::Execution(_)
            | DataFusionError::ArrowError(..)
            | DataFusionError::Diagnostic(..) => Self::Sql(root.to_string()),
            DataFusionError::ParquetError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_)
            | DataFusionError::Internal(_)
            | DataFusionError::ExecutionJoin(_)
            | DataFusionError::External(_)
            | DataFusionError::Context(..)
            | DataFusionError::Substrait(_)
            | DataFusionError::Collection(_)
            | DataFusionError::Shared(_)
            | DataFusionError::Ffi(_) => Self::Internal(e.to_string()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Sql(_)
            | Self::NotReadOnly(_)
            | Self::MemoryLimit(_)
            | Self::Timeout(_)
            | Self::ResultTooLarge(_)
            | Self::UnknownFormat(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable word for clients and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sql(_) => "sql",
            Self::NotReadOnly(_) => "not_read_only",
            Self::MemoryLimit(_) => "memory_limit",
            Self::Timeout(_) => "timeout",
            Self::ResultTooLarge(_) => "result_too_large",
            Self::UnknownFormat(_) => "unknown_format",
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        if let Self::Internal(details) = &self {
            tracing::error!(error = %details, "query failed on our side");
        }
        let body = serde_json::json!({ "error": self.to_string(), "code": self.code() });
        (self.status(), axum::Json(body)).into_response()
    }
}
