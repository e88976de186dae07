//! The subcommands of `footfall`, one module each.

pub mod auth;
pub mod demo;
pub mod export;
pub mod forget;
pub mod report;
pub mod serve;
pub mod sim;
pub mod sql;

use std::path::Path;
use std::sync::Arc;

use footfall_schemas::Venue;

use crate::AppError;

/// Logs to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The venue file given, or the reference fair built into the binary.
pub fn load_venue(path: Option<&Path>) -> Result<Arc<Venue>, AppError> {
    Ok(Arc::new(match path {
        Some(path) => Venue::from_path(path)?,
        None => footfall_schemas::venue::reference(),
    }))
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Sends a request to a footfall server, with the token when there is one,
/// and reads the whole answer, whatever its status. Fails only when the
/// server cannot be reached or the answer cannot be read.
pub async fn exchange(
    mut request: reqwest::RequestBuilder,
    url: &str,
    token: Option<&str>,
) -> Result<(reqwest::StatusCode, Vec<u8>), AppError> {
    if let Some(token) = token {
        request = request.bearer_auth(token.trim());
    }
    let response = request
        .send()
        .await
        .map_err(|e| AppError::Remote(format!("cannot reach {url}: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| AppError::Remote(format!("reading the answer of {url}: {e}")))?;
    Ok((status, body.to_vec()))
}
