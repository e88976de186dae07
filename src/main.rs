//! The `footfall` command: parses the command line and calls the library.

use anyhow::Result;
use clap::{Parser, Subcommand};

use footfall::cli;
use footfall::server::Role;

/// jemalloc, with background threads that give freed pages back to the system
/// (`.cargo/config.toml` sets how soon). glibc's malloc kept what SQL had
/// freed in its per-thread arenas: at the 50-million-scan week the query
/// service, 0.75 GiB at rest, stayed at 1.5 GiB between questions and reached
/// 2.05 GiB answering them; under jemalloc it stays at 1.0 to 1.2 GiB and
/// reached 1.77 GiB, no slower (`bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "footfall",
    version,
    about = "Visitor-flow and attendance analytics for fairs and conferences"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service on the embedded log with the simulator feeding it live.
    Demo(cli::demo::DemoArgs),
    /// Run the service (ingest + query), on the embedded log or on Kafka.
    Serve(cli::serve::ServeArgs),
    /// Run a stateless ingest worker on Kafka (`--kafka`); run several.
    Ingest(cli::serve::ServeArgs),
    /// Run a query instance on Kafka (`--kafka`); instances share the
    /// partitions by consumer group and answer SQL for the whole fair.
    Query(cli::serve::ServeArgs),
    /// Simulate the fair: write events to a file or send them to a server.
    Sim(cli::sim::SimArgs),
    /// Ask a running server a SQL question.
    Sql(cli::sql::SqlArgs),
    /// Write every table and view of a running server as Parquet files.
    Export(cli::export::ExportArgs),
    /// Write sponsor reports (HTML, CSV, JSON, PDF) from a running server.
    Report(cli::report::ReportArgs),
    /// Make tokens for the auth file (`serve --auth`), or hash one.
    Auth(cli::auth::AuthArgs),
    /// Erase one visitor (by badge id) from every table; run it with the
    /// server stopped.
    Forget(cli::forget::ForgetArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    cli::init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => cli::demo::run(args).await?,
            Command::Serve(args) => cli::serve::run(args, Role::Both).await?,
            Command::Ingest(args) => cli::serve::run(args, Role::Ingest).await?,
            Command::Query(args) => cli::serve::run(args, Role::Query).await?,
            Command::Sim(args) => cli::sim::run(args).await?,
            Command::Sql(args) => cli::sql::run(args).await?,
            Command::Export(args) => cli::export::run(args).await?,
            Command::Report(args) => cli::report::run(args).await?,
            Command::Auth(args) => cli::auth::run(args)?,
            Command::Forget(args) => cli::forget::run(args)?,
        }
        Ok(())
    })
}
