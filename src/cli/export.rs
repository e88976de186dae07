//! `footfall export`: every table and view of a running server as Parquet,
//! for DuckDB, pandas or Excel users. Tables and views with a `local_day`
//! column get one file per local day (`scans/2026-02-16.parquet`), the
//! others one file (`occupancy/all.parquet`); `schema.json` describes every
//! column and file. What is exported is what `POST /v1/sql` answers, so an
//! export and SQL agree by construction of the same engine.

use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::AppError;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Directory to write into; created if missing, files of the same names
    /// replaced.
    #[arg(long)]
    pub out: PathBuf,
    /// The server to export from.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "FOOTFALL_SERVER")]
    pub server: String,
    /// Bearer token for a server started with an auth file (analyst or
    /// organizer role).
    #[arg(long, env = "FOOTFALL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `schema.json`: what the export holds.
#[derive(Debug, Serialize)]
pub struct Manifest {
    /// `footfall-export/1`.
    pub format: &'static str,
    /// Where the definitions of the tables and views are documented.
    pub docs: &'static str,
    pub tables: Vec<TableEntry>,
}

/// One table or view of the export.
#[derive(Debug, Serialize)]
pub struct TableEntry {
    pub name: String,
    /// `table` or `view`.
    pub kind: &'static str,
    /// `local_day` when there is one file per day, else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitioned_by: Option<&'static str>,
    pub rows: u64,
    pub columns: Vec<Column>,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Serialize)]
pub struct Column {
    pub name: String,
    /// The Arrow type, as DataFusion names it (e.g. `Timestamp(ms, "UTC")`).
    pub data_type: String,
    pub nullable: bool,
}

#[derive(Debug, Serialize)]
pub struct FileEntry {
    /// Relative to the export directory.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_day: Option<String>,
    pub rows: u64,
}

pub async fn run(args: ExportArgs) -> Result<(), AppError> {
    let started = Instant::now();
    let manifest = export(&args.server, args.token.as_deref(), &args.out).await?;
    let files: usize = manifest.tables.iter().map(|t| t.files.len()).sum();
    println!(
        "exported {} tables and views ({files} Parquet files) to {} in {:.1} s",
        manifest.tables.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the export and returns its manifest. Fails if the server cannot
/// be reached or refuses a query, or a file cannot be written.
pub async fn export(server: &str, token: Option<&str>, out: &Path) -> Result<Manifest, AppError> {
    let client = Remote::new(server, token);
    std::fs::create_dir_all(out).map_err(AppError::io(format!("creating {}", out.display())))?;
    let listing = client
        .json(
            "SELECT table_name, table_type FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY table_name",
        )
        .await?;
    let mut tables = Vec::new();
    for row in listing {
        let name = text(&row, "table_name")?;
        let kind = if text(&row, "table_type")? == "VIEW" {
            "view"
        } else {
            "table"
        };
        let columns = client
            .json(&format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = '{name}' ORDER BY ordinal_position"
            ))
            .await?
            .iter()
            .map(|c| {
                Ok(Column {
                    name: text(c, "column_name")?,
                    data_type: text(c, "data_type")?,
                    nullable: text(c, "is_nullable")? == "YES",
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let by_day = columns.iter().any(|c| c.name == "local_day");
        let dir = out.join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(AppError::io(format!("creating {}", dir.display())))?;
        let mut files = Vec::new();
        if by_day {
            let days = client
                .json(&format!(
                    "SELECT CAST(local_day AS VARCHAR) AS day, count(*) AS n FROM \"{name}\" \
                     GROUP BY local_day ORDER BY local_day"
                ))
                .await?;
            for day in days {
                let local_day = text(&day, "day")?;
                let path = format!("{name}/{local_day}.parquet");
                let body = client
                    .parquet(&format!(
                        "SELECT * FROM \"{name}\" WHERE local_day = DATE '{local_day}'"
                    ))
                    .await?;
                write(&out.join(&path), &body)?;
                files.push(FileEntry {
                    path,
                    local_day: Some(local_day),
                    rows: count(&day, "n")?,
                });
            }
        } else {
            let rows = count(
                &client
                    .json(&format!("SELECT count(*) AS n FROM \"{name}\""))
                    .await?[0],
                "n",
            )?;
            let path = format!("{name}/all.parquet");
            let body = client.parquet(&format!("SELECT * FROM \"{name}\"")).await?;
            write(&out.join(&path), &body)?;
            files.push(FileEntry {
                path,
                local_day: None,
                rows,
            });
        }
        tables.push(TableEntry {
            rows: files.iter().map(|f| f.rows).sum(),
            name,
            kind,
            partitioned_by: by_day.then_some("local_day"),
            columns,
            files,
        });
    }
    let manifest = Manifest {
        format: "footfall-export/1",
        docs: "docs/sql.md in the footfall repository",
        tables,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| AppError::Config(format!("encoding schema.json: {e}")))?;
    write(&out.join("schema.json"), &json)?;
    Ok(manifest)
}

/// Writes a file whole: to a temporary name, then renamed, so a reader never
/// sees half a Parquet file.
fn write(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(AppError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(AppError::io(format!("writing {}", path.display())))
}

fn text(row: &serde_json::Value, key: &str) -> Result<String, AppError> {
    row[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| AppError::Remote(format!("the server's answer has no text {key}: {row}")))
}

fn count(row: &serde_json::Value, key: &str) -> Result<u64, AppError> {
    row[key]
        .as_u64()
        .ok_or_else(|| AppError::Remote(format!("the server's answer has no count {key}: {row}")))
}

/// A server's `POST /v1/sql`.
struct Remote {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Remote {
    fn new(server: &str, token: Option<&str>) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("{}/v1/sql", server.trim_end_matches('/')),
            token: token.map(str::to_owned),
        }
    }

    async fn fetch(&self, sql: &str, format: &str) -> Result<Vec<u8>, AppError> {
        let url = format!("{}?format={format}", self.url);
        let request = self.client.post(&url).body(sql.to_owned());
        let (status, body) = super::exchange(request, &url, self.token.as_deref()).await?;
        if !status.is_success() {
            return Err(AppError::Remote(format!(
                "{status} for {sql}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(body)
    }

    async fn json(&self, sql: &str) -> Result<Vec<serde_json::Value>, AppError> {
        let body = self.fetch(sql, "json").await?;
        serde_json::from_slice(&body)
            .map_err(|e| AppError::Remote(format!("the answer to {sql} is not JSON rows: {e}")))
    }

    async fn parquet(&self, sql: &str) -> Result<Vec<u8>, AppError> {
        self.fetch(sql, "parquet").await
    }
}
