//! Compaction end to end (issue 7): a fair day that arrives in many small
//! flushes ends as a few files once the materialiser has caught up, and
//! every answer stays exact, also after a restart.
//!
//! The server flushes whenever it holds a row (`flush_rows = 1`), and each
//! chunk of the day is sent only once the rows before it are queryable,
//! which with that setting means written: every chunk lands in files of its
//! own, so without compaction the day would hold at least [`CHUNKS`] files.

mod common;

use common::{Server, assert_same, get, hourly, post, sim, sql, truth, wait_ready};
use std::path::Path;
use std::time::{Duration, Instant};

const CHUNKS: usize = 24;
/// `compact::MIN_FILES`: a day with this many small files is merged.
const MIN_FILES: usize = 8;

#[test]
fn a_day_flushed_in_small_files_is_merged_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (events, truth_file) = (
        dir.path().join("events.ndjson"),
        dir.path().join("truth.ndjson"),
    );
    sim(&[
        "--days",
        "1",
        "--seed",
        "17",
        "--visitors-per-day",
        "1500",
        "--no-faults",
        "--out",
        events.to_str().unwrap(),
        "--truth",
        truth_file.to_str().unwrap(),
    ]);
    let lines: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let scans = lines
        .iter()
        .filter(|l| l.contains("\"badge_scan\""))
        .count();
    let config = dir.path().join("footfall.toml");
    // Replaced files are deleted sql_timeout_ms + 2 s after a merge.
    std::fs::write(&config, "[query]\nflush_rows = 1\nsql_timeout_ms = 1000\n").unwrap();
    let data = dir.path().join("data");
    let start = || Server::spawn("serve", &data, 0, &["--config", config.to_str().unwrap()]);

    let server = start();
    let base = server.base();
    wait_ready(&base, Duration::from_secs(60));
    let mut sent = 0;
    for chunk in lines.chunks(lines.len().div_ceil(CHUNKS)) {
        for batch in chunk.chunks(500) {
            let (code, body) = post(&format!("{base}/v1/events"), &batch.join("\n"));
            assert_eq!(code, 200, "{body}");
        }
        sent += chunk.len();
        wait_records(&base, sent);
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let files = loop {
        let files = scan_files(&data);
        let due = compaction_due(&base);
        if due == 0 && files.values().all(|&(n, _)| n < MIN_FILES) {
            break files;
        }
        assert!(
            Instant::now() < deadline,
            "small files still wait a minute after the last chunk: {due} due, on disk {files:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(files.len(), 1, "one fair day of scans: {files:?}");
    let (_, written) = files.values().next().unwrap();
    assert!(
        *written >= CHUNKS as u64,
        "files are named by the stream's write sequence: at least one a chunk, {written}"
    );

    let want = truth(&truth_file);
    assert_same(&hourly(&base), &want);
    assert_eq!(count(&base, "SELECT count(*) AS n FROM scans"), scans);
    assert_eq!(
        count(&base, "SELECT count(DISTINCT event_id) AS n FROM scans"),
        scans,
        "no scan is lost or repeated by a merge"
    );

    assert!(server.terminate().success());
    let server = start();
    wait_ready(&server.base(), Duration::from_secs(60));
    assert_same(&hourly(&server.base()), &want);
    assert_eq!(
        count(&server.base(), "SELECT count(*) AS n FROM scans"),
        scans
    );
}

fn count(base: &str, query: &str) -> usize {
    sql(base, query)[0]["n"].as_u64().unwrap() as usize
}

/// Waits until the tables hold `n` records (the fair has no faults: one
/// record a line).
fn wait_records(base: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let query = "SELECT (SELECT count(*) FROM scans) + (SELECT count(*) FROM tickets) \
                 + (SELECT count(*) FROM rejected) AS n";
    while count(base, query) != n {
        assert!(
            Instant::now() < deadline,
            "the tables hold {n} records within a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn compaction_due(base: &str) -> u64 {
    let (_, text) = get(&format!("{base}/metrics"));
    text.lines()
        .find_map(|l| l.strip_prefix("footfall_materialiser_compaction_due_files "))
        .expect("the compaction gauge is exported")
        .trim()
        .parse()
        .unwrap()
}

/// Parquet files of `scans` on disk, by stream and local day: how many, and
/// the highest sequence number in their names.
fn scan_files(data: &Path) -> std::collections::BTreeMap<String, (usize, u64)> {
    let mut files = std::collections::BTreeMap::new();
    let Ok(streams) = std::fs::read_dir(data.join("tables/scans")) else {
        return files;
    };
    for stream in streams.flatten() {
        for day in std::fs::read_dir(stream.path()).unwrap().flatten() {
            let seqs: Vec<u64> = std::fs::read_dir(day.path())
                .unwrap()
                .flatten()
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
                .collect();
            let key = format!(
                "{}/{}",
                stream.file_name().to_string_lossy(),
                day.file_name().to_string_lossy()
            );
            files.insert(key, (seqs.len(), seqs.into_iter().max().unwrap_or(0)));
        }
    }
    files
}
