//! Errors of starting and running the server and the tools.

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// User: a bad venue file; the message names the line.
    #[error(transparent)]
    Venue(#[from] footfall_schemas::VenueError),
    /// User: a setting that cannot work (an address, a combination of flags).
    #[error("{0}")]
    Config(String),
    /// External: the event log cannot be opened or reached.
    #[error(transparent)]
    Log(#[from] footfall_eventlog::LogError),
    /// Internal or external: the query service did not start.
    #[error(transparent)]
    Query(#[from] footfall_query::QueryError),
    /// External: a file or socket failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Internal: metrics registered twice (a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// External: the server answered with an error or could not be reached.
    #[error("{0}")]
    Remote(String),
}

impl AppError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
