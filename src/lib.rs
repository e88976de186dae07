//! The `footfall` binary's library: wires ingest, query and the event log
//! into one server, and holds the command-line tools (demo, sim, sql).
//! `main.rs` only parses arguments and calls in here.

pub mod auth;
pub mod cli;
pub mod error;
pub mod sender;
pub mod server;

pub use error::AppError;
