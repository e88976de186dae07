//! `footfall sql`: sends SQL to a running server and prints the answer as a
//! table (or raw JSON/CSV).

use arrow::ipc::reader::StreamReader;
use clap::{Args, ValueEnum};

use crate::AppError;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The query.
    pub sql: String,
    /// The server to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "FOOTFALL_SERVER")]
    pub server: String,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// The token (analyst or organizer) when the server has an auth file.
    #[arg(long, env = "FOOTFALL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn run(args: SqlArgs) -> Result<(), AppError> {
    let format = match args.output {
        Output::Table => "arrow",
        Output::Json => "json",
        Output::Csv => "csv",
    };
    let url = format!(
        "{}/v1/sql?format={format}",
        args.server.trim_end_matches('/')
    );
    let request = reqwest::Client::new().post(&url).body(args.sql);
    let (status, body) = super::exchange(request, &url, args.token.as_deref()).await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(AppError::Remote(format!("{status}: {message}")));
    }
    match args.output {
        Output::Table => {
            let reader = StreamReader::try_new(&body[..], None)
                .map_err(|e| AppError::Remote(format!("the answer is not Arrow: {e}")))?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| AppError::Remote(format!("the answer is not Arrow: {e}")))?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let table = arrow::util::pretty::pretty_format_batches(&batches)
                .map_err(|e| AppError::Remote(format!("cannot print the answer: {e}")))?;
            println!("{table}");
            println!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
        Output::Json | Output::Csv => println!("{}", String::from_utf8_lossy(&body)),
    }
    Ok(())
}
