//! Helpers of the view, export and report tests: `footfall serve` with a
//! known pseudonymisation key (so tests can name badges) on any venue file.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pseudonymisation key written into the test's data dir.
pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The `footfall` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_footfall");

/// A path under the workspace root.
pub fn root(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `footfall serve` on a venue file with [`KEY_HEX`]; killed on drop.
pub struct Keyed {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
}

impl Drop for Keyed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Keyed {
    /// Starts the server and waits for its address line.
    pub fn start(data_dir: &Path, venue: &Path) -> Self {
        std::fs::create_dir_all(data_dir).unwrap();
        std::fs::write(data_dir.join("pseudonym.key"), KEY_HEX).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--venue"])
            .arg(venue)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the footfall binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("footfall printed its address").unwrap();
            if let Some(rest) = line.strip_prefix("footfall listening on ") {
                break rest.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Posts NDJSON lines in batches of `batch` lines; returns the number of
    /// events accepted (duplicates and rejected ones excluded).
    pub fn send(&self, ndjson: &str, batch: usize) -> u64 {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let lines: Vec<&str> = ndjson.lines().collect();
        let mut accepted = 0;
        for chunk in lines.chunks(batch) {
            let response = client
                .post(format!("{}/v1/events", self.base))
                .header("content-type", "application/x-ndjson")
                .body(chunk.join("\n"))
                .send()
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            let answer: serde_json::Value = response.json().unwrap();
            accepted += answer["accepted"].as_u64().unwrap();
        }
        accepted
    }

    /// Runs SQL and returns the JSON rows; panics on an error answer.
    pub fn sql(&self, sql: &str) -> Vec<serde_json::Value> {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/v1/sql?format=json", self.base))
            .body(sql.to_owned())
            .send()
            .unwrap();
        let status = response.status();
        let text = response.text().unwrap();
        assert!(status.is_success(), "{sql}: {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Waits until the scans and tickets tables hold `events` rows together.
    pub fn wait_for_events(&self, events: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let n = self
                .sql("SELECT (SELECT count(*) FROM scans) + (SELECT count(*) FROM tickets) AS n")
                [0]["n"]
                .as_u64()
                .unwrap();
            if n == events {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} of {events} events queryable after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The Python with DuckDB the tests run: `$FOOTFALL_PYTHON` (set by
/// `scripts/tools env`), else `python3`. Panics with what to do if DuckDB
/// is missing: these tests must not skip silently.
pub fn python() -> String {
    let python = std::env::var("FOOTFALL_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import duckdb: run `scripts/tools install` and \
         `eval \"$(scripts/tools env)\"` (or use scripts/test)"
    );
    python
}
