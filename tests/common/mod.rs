//! Shared helpers of the end-to-end tests: the real `footfall` binary,
//! spawned on a free loopback port, and talked to over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_footfall");

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts `footfall serve` and waits for its address line.
    pub fn start(data_dir: &Path, port: u16) -> Self {
        Self::spawn("serve", data_dir, port, &[])
    }

    /// Starts `footfall COMMAND --listen 127.0.0.1:PORT --data-dir DIR
    /// EXTRA…` and waits for its address line.
    pub fn spawn(command: &str, data_dir: &Path, port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args([
                command,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the footfall binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("footfall {command} printed its address"))
                .unwrap();
            if let Some(rest) = line.strip_prefix("footfall listening on http://") {
                break rest.trim().parse().unwrap();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.child.wait().unwrap()
    }

    /// SIGTERM, then wait at most `within`: the exit status, or `None`
    /// when the process is still running (it is then killed on drop).
    pub fn terminate_within(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.sigterm();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn sigterm(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// POSTs a body; the status (0 when the server cannot be reached) and text.
pub fn post(url: &str, body: &str) -> (u16, String) {
    match client().post(url).body(body.to_owned()).send() {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

pub fn get(url: &str) -> (u16, String) {
    match client().get(url).send() {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// A batch of `n` scans with ids `{prefix}-{i}`, timestamped now, for the
/// reference venue (NDJSON).
pub fn scans(prefix: &str, n: usize) -> String {
    let venue = footfall_schemas::venue::reference();
    let ts = chrono::Utc::now().to_rfc3339();
    (0..n)
        .map(|i| {
            let scanner = &venue.scanners[i % venue.scanners.len()].id;
            format!(
                "{{\"type\":\"badge_scan\",\"event_id\":\"{prefix}-{i}\",\"ts\":\"{ts}\",\"badge_id\":\"V-{i}\",\"scanner_id\":\"{scanner}\"}}\n"
            )
        })
        .collect()
}

/// Runs SQL and returns the JSON rows. Panics on an error answer.
pub fn sql(base: &str, query: &str) -> Vec<serde_json::Value> {
    let (code, body) = post(&format!("{base}/v1/sql?format=json"), query);
    assert_eq!(code, 200, "{query}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls until the server is ready (log up, materialiser caught up).
pub fn wait_ready(base: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while get(&format!("{base}/readyz")).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "{base} not ready within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `footfall_hourly` as comparable rows.
pub type HourlyRow = (String, String, String, String, u64, u64);

pub fn hourly(base: &str) -> Vec<HourlyRow> {
    let rows = sql(
        base,
        "SELECT CAST(local_day AS VARCHAR) AS d, CAST(local_hour AS VARCHAR) AS h, level, zone_id, entries, visitors \
         FROM footfall_hourly ORDER BY d, h, level, zone_id",
    );
    rows.into_iter().map(|r| row(&r, "d", "h")).collect()
}

fn row(r: &serde_json::Value, day: &str, hour: &str) -> HourlyRow {
    let s = |k: &str| {
        r[k].as_str()
            .unwrap_or_else(|| panic!("{k} in {r}"))
            .to_owned()
    };
    (
        s(day),
        s(hour).replace(' ', "T"),
        s("level"),
        s("zone_id"),
        r["entries"].as_u64().unwrap(),
        r["visitors"].as_u64().unwrap(),
    )
}

/// The simulator's truth file as comparable rows.
pub fn truth(path: &Path) -> Vec<HourlyRow> {
    let mut rows: Vec<HourlyRow> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| row(&serde_json::from_str(l).unwrap(), "local_day", "local_hour"))
        .collect();
    rows.sort();
    rows
}

/// Asserts equality row for row, printing the first differences.
pub fn assert_same(got: &[HourlyRow], want: &[HourlyRow]) {
    let got_set: std::collections::BTreeSet<_> = got.iter().collect();
    let want_set: std::collections::BTreeSet<_> = want.iter().collect();
    let missing: Vec<_> = want_set.difference(&got_set).take(10).collect();
    let extra: Vec<_> = got_set.difference(&want_set).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && got.len() == want.len(),
        "footfall_hourly differs from the truth ({} rows vs {}):\n missing {missing:#?}\n extra {extra:#?}",
        got.len(),
        want.len()
    );
}

/// Runs `footfall sim` to completion with the given arguments.
pub fn sim(args: &[&str]) {
    let status = Command::new(BIN)
        .arg("sim")
        .args(args)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success(), "footfall sim {args:?} failed");
}

/// Rows of `table` that the committed manifests name.
pub fn checkpointed_rows(data: &Path, table: &str) -> u64 {
    let mut rows = 0;
    let Ok(dir) = std::fs::read_dir(data.join("checkpoints")) else {
        return 0;
    };
    for entry in dir {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for file in manifest["files"].as_array().unwrap() {
                if file["table"] == table {
                    rows += file["rows"].as_u64().unwrap();
                }
            }
        }
    }
    rows
}
