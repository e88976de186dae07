//! End to end on the embedded log: a simulated day with scanner faults sent
//! over HTTP to the real binary; `footfall_hourly` must equal the
//! simulator's truth, row for row, also when the server is killed (-9) and
//! restarted while the sender keeps retrying.

mod common;

use common::{Server, assert_same, free_port, hourly, sim, truth, wait_ready};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_simulated_day_with_faults_equals_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), 0);
    let truth_file = dir.path().join("truth.ndjson");
    sim(&[
        "--days",
        "1",
        "--seed",
        "11",
        "--target",
        &server.base(),
        "--truth",
        truth_file.to_str().unwrap(),
        "--retry-rate",
        "0.02",
        "--offline-rate",
        "0.1",
        "--skewed-clock-rate",
        "0.1",
        "--malformed-rate",
        "0.01",
    ]);
    wait_ready(&server.base(), Duration::from_secs(60));
    let want = truth(&truth_file);
    assert!(
        want.len() > 100,
        "the simulated day has hours and zones: {}",
        want.len()
    );
    assert_same(&hourly(&server.base()), &want);
    let rejected = common::sql(&server.base(), "SELECT count(*) AS n FROM rejected");
    assert!(
        rejected[0]["n"].as_u64().unwrap() > 0,
        "malformed lines are kept in rejected"
    );
}

#[test]
fn kill_9_mid_stream_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let server = Server::start(&data, port);
    let base = server.base();
    let truth_file = dir.path().join("truth.ndjson");
    // The sender runs on its own, retrying every unacknowledged batch.
    let mut sender = Command::new(common::BIN)
        .args([
            "sim", "--days", "2", "--seed", "5", "--batch", "200", "--target", &base, "--truth",
        ])
        .arg(&truth_file)
        .args([
            "--retry-rate",
            "0.02",
            "--offline-rate",
            "0.1",
            "--retry-for-s",
            "120",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    // Let some batches land, then pull the plug twice.
    let mut server = Some(server);
    for round in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = common::sql(&base, "SELECT count(*) AS n FROM scans")[0]["n"]
                .as_u64()
                .unwrap();
            if n > 20_000 * (round + 1) {
                break;
            }
            assert!(Instant::now() < deadline, "the sender makes progress");
            std::thread::sleep(Duration::from_millis(100));
        }
        server.take().unwrap().kill9();
        std::thread::sleep(Duration::from_millis(500));
        server = Some(Server::start(&data, port));
    }
    let status = sender.wait().unwrap();
    assert!(status.success(), "the sender delivered every batch");
    wait_ready(&base, Duration::from_secs(60));
    assert_same(&hourly(&base), &truth(&truth_file));
    let dup = common::sql(
        &base,
        "SELECT count(*) AS n FROM (SELECT event_id FROM scans GROUP BY event_id HAVING count(*) > 1)",
    );
    assert_eq!(dup[0]["n"].as_u64(), Some(0), "no event is counted twice");
}

/// The default data dir is relative (`./footfall-data`): SQL must still
/// read the Parquet files once rows are flushed.
#[test]
fn a_relative_data_dir_serves_flushed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let relative = std::path::PathBuf::from(format!(
        "{up}{}",
        dir.path().strip_prefix("/").unwrap().display()
    ));
    assert!(relative.is_relative());
    let settings = dir.path().join("footfall.toml");
    std::fs::write(&settings, "[query]\nflush_interval_ms = 100\n").unwrap();
    let server = Server::spawn(
        "serve",
        &relative.join("data"),
        0,
        &["--config", settings.to_str().unwrap()],
    );
    sim(&[
        "--days",
        "1",
        "--seed",
        "3",
        "--visitors-per-day",
        "200",
        "--no-faults",
        "--target",
        &server.base(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let flushed = || {
        std::fs::read_dir(dir.path().join("data/tables/scans"))
            .map(|mut streams| streams.next().is_some())
            .unwrap_or(false)
    };
    while !flushed() {
        assert!(Instant::now() < deadline, "rows are flushed to Parquet");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_ready(&server.base(), Duration::from_secs(60));
    let n = common::sql(&server.base(), "SELECT count(*) AS n FROM scans")[0]["n"]
        .as_u64()
        .unwrap();
    assert!(n > 100, "the flushed scans are read back: {n}");
}
