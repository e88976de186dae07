//! `footfall report`: sponsor reports from a running server, one per
//! exhibitor (all of its stands), as HTML, CSV and JSON files, and PDF printed
//! by headless Chromium (`tools/web/pdf.mjs`, playwright-core).

use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::AppError;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["exhibitor", "all"])))]
pub struct ReportArgs {
    /// The exhibitor id (as in the venue file) to report on.
    #[arg(long)]
    pub exhibitor: Option<String>,
    /// One report per exhibitor of the venue.
    #[arg(long)]
    pub all: bool,
    /// Where to write `<exhibitor>.html`, `.csv`, `.json` (and `.pdf`).
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Also print each HTML report to PDF with headless Chromium.
    #[arg(long)]
    pub pdf: bool,
    /// Folder of the web tools (`pdf.mjs` and its node_modules).
    #[arg(long, default_value = "tools/web", env = "FOOTFALL_WEB_TOOLS")]
    pub web_tools: PathBuf,
    /// The server to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "FOOTFALL_SERVER")]
    pub server: String,
    /// Bearer token for a server started with an auth file.
    #[arg(long, env = "FOOTFALL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn run(args: ReportArgs) -> Result<(), AppError> {
    let started = Instant::now();
    let server = args.server.trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    let exhibitors = match &args.exhibitor {
        Some(id) => vec![id.clone()],
        None => list_exhibitors(&client, &server, args.token.as_deref()).await?,
    };
    std::fs::create_dir_all(&args.out_dir)
        .map_err(AppError::io(format!("creating {}", args.out_dir.display())))?;
    let mut pages = Vec::new();
    for exhibitor in &exhibitors {
        // Exhibitor ids are venue tokens ([A-Za-z0-9._:-]), safe in a path
        // and a file name; anything else is refused by the server as unknown.
        if !exhibitor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            return Err(AppError::Config(format!(
                "{exhibitor:?} is not an exhibitor id"
            )));
        }
        for format in ["html", "csv", "json"] {
            let url = format!("{server}/v1/reports/exhibitors/{exhibitor}?format={format}");
            let body = get(&client, &url, args.token.as_deref()).await?;
            let path = args.out_dir.join(format!("{exhibitor}.{format}"));
            std::fs::write(&path, body)
                .map_err(AppError::io(format!("writing {}", path.display())))?;
            if format == "html" {
                pages.push(path);
            }
        }
    }
    let fetched = started.elapsed();
    if args.pdf {
        print_pdfs(&args.web_tools, &pages)?;
    }
    println!(
        "{} reports written to {} in {:.1} s ({:.1} s for HTML, CSV and JSON{})",
        exhibitors.len(),
        args.out_dir.display(),
        started.elapsed().as_secs_f64(),
        fetched.as_secs_f64(),
        if args.pdf { ", the rest for PDF" } else { "" }
    );
    Ok(())
}

async fn list_exhibitors(
    client: &reqwest::Client,
    server: &str,
    token: Option<&str>,
) -> Result<Vec<String>, AppError> {
    let url = format!("{server}/v1/sql?format=json");
    let request = client
        .post(&url)
        .body("SELECT DISTINCT exhibitor FROM stands ORDER BY exhibitor");
    let body = send(request, &url, token).await?;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| AppError::Remote(format!("{url}: not JSON rows: {e}")))?;
    rows.iter()
        .map(|r| {
            r["exhibitor"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| AppError::Remote(format!("{url}: a row without exhibitor: {r}")))
        })
        .collect()
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<Vec<u8>, AppError> {
    send(client.get(url), url, token).await
}

/// The answer's body; a status other than success is an error.
async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
    token: Option<&str>,
) -> Result<Vec<u8>, AppError> {
    let (status, body) = super::exchange(request, url, token).await?;
    if !status.is_success() {
        return Err(AppError::Remote(format!(
            "{url}: {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    Ok(body)
}

/// Prints every page to PDF with one headless Chromium.
fn print_pdfs(web_tools: &Path, pages: &[PathBuf]) -> Result<(), AppError> {
    let script = web_tools.join("pdf.mjs");
    if !script.exists() {
        return Err(AppError::Config(format!(
            "{} not found: run from the repository or pass --web-tools",
            script.display()
        )));
    }
    let status = std::process::Command::new("node")
        .arg(&script)
        .args(pages)
        .status()
        .map_err(AppError::io("running node (needed for --pdf)"))?;
    if !status.success() {
        return Err(AppError::Remote(format!(
            "printing PDFs with {} failed ({status}); is chromium installed (scripts/tools install)?",
            script.display()
        )));
    }
    Ok(())
}
