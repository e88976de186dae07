//! Errors of the event log.

/// Failures of the log. None is the sender's fault; the HTTP layer maps them
/// to 503 with `Retry-After` for [`LogError::Unavailable`] and
/// [`LogError::Full`].
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// External: the store or broker cannot take or serve records now (disk
    /// error, broker down, timeout). A retry may succeed once it recovers.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// External: the log is pushing back (its queue is full). Retry shortly.
    #[error("event log is full, retry shortly")]
    Full,
    /// Internal: the log is being shut down. Not retried in this process.
    #[error("event log is closed")]
    Closed,
    /// Internal: a bad argument from our own code (unknown stream, say).
    #[error("event log misuse: {0}")]
    Invalid(String),
}
