//! Outages against the real binary on the embedded log: SIGTERM while
//! batches are in flight drains (answers them, flushes, checkpoints, exits
//! 0), and a materialiser that cannot write Parquet retries until it can,
//! not ready meanwhile, without a restart and without losing a row.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, get, post, scans, sql, wait_ready};

/// Rows of `table` that the committed manifests name.
fn checkpointed_rows(data: &Path, table: &str) -> u64 {
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

fn count(base: &str) -> (u64, u64) {
    let rows = sql(
        base,
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM scans",
    );
    (
        rows[0]["n"].as_u64().unwrap(),
        rows[0]["d"].as_u64().unwrap(),
    )
}

fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("footfall.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn sigterm_answers_in_flight_batches_flushes_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No flush before the end: whatever the tables hold after the exit, the
    // last flush at SIGTERM wrote.
    let cfg = config(dir.path(), "[query]\nflush_interval_ms = 3600000\n");
    let server = Server::spawn("serve", &data, 0, &["--config", &cfg]);
    let base = server.base();
    wait_ready(&base, Duration::from_secs(60));

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..3)
        .map(|t| {
            let (stop, acked, base) = (stop.clone(), acked.clone(), base.clone());
            std::thread::spawn(move || {
                let mut refused_after_stop = 0;
                for b in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (code, body) = post(
                        &format!("{base}/v1/events"),
                        &scans(&format!("t{t}-b{b}"), 200),
                    );
                    match code {
                        200 => {
                            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
                            assert_eq!(answer["accepted"], 200, "{body}");
                            acked.fetch_add(200, Ordering::SeqCst);
                        }
                        // The server has closed its port: stop sending.
                        0 => {
                            refused_after_stop += 1;
                            break;
                        }
                        other => panic!("a batch got {other} during shutdown: {body}"),
                    }
                }
                refused_after_stop
            })
        })
        .collect();
    // SIGTERM once batches flow.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 3_000 {
        assert!(Instant::now() < deadline, "batches flow");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.terminate();
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.join().expect("no sender saw an error status");
    }
    assert!(
        status.success(),
        "footfall exits 0 after SIGTERM: {status:?}"
    );
    let acked = acked.load(Ordering::SeqCst) as u64;

    // The last checkpoint covers every acknowledged batch: nothing waits for
    // a replay of the log.
    let flushed = checkpointed_rows(&data, "scans");
    assert!(
        flushed >= acked,
        "checkpointed {flushed} rows, {acked} acknowledged"
    );
    let server = Server::spawn("serve", &data, 0, &["--config", &cfg]);
    wait_ready(&server.base(), Duration::from_secs(60));
    let (n, distinct) = count(&server.base());
    assert_eq!(n, distinct, "no event twice");
    assert_eq!(n, flushed, "the tables are the checkpointed files");
    eprintln!("sigterm drain: {acked} events acknowledged, {flushed} checkpointed at exit");
}

#[test]
fn a_materialiser_that_cannot_write_retries_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(
        dir.path(),
        "[query]\nflush_interval_ms = 200\nbatch_linger_ms = 50\n",
    );
    let server = Server::spawn("serve", &data, 0, &["--config", &cfg]);
    let base = server.base();
    wait_ready(&base, Duration::from_secs(60));

    // Nothing flushed yet, so no `tables` folder: a file in its place makes
    // every Parquet write fail (as root, a read-only mode would not).
    let blocker = data.join("tables");
    assert!(!blocker.exists());
    std::fs::write(&blocker, b"in the way").unwrap();

    let (code, body) = post(&format!("{base}/v1/events"), &scans("a", 500));
    assert_eq!(code, 200, "the log still takes events: {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let readyz = loop {
        let (code, text) = get(&format!("{base}/readyz"));
        if code == 503 && text.contains("cannot write Parquet") {
            break text;
        }
        assert!(Instant::now() < deadline, "readyz says why: {code} {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The rows stay queryable from memory meanwhile, and ingest answers.
    assert_eq!(count(&base), (500, 500), "{readyz}");
    let (code, _) = post(&format!("{base}/v1/events"), &scans("b", 100));
    assert_eq!(code, 200);
    assert_eq!(checkpointed_rows(&data, "scans"), 0);

    // The cause goes away: the next retry flushes, without a restart.
    std::fs::remove_file(&blocker).unwrap();
    wait_ready(&base, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while checkpointed_rows(&data, "scans") < 600 {
        assert!(Instant::now() < deadline, "the rows reach Parquet");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(&base), (600, 600));
    assert!(server.terminate().success());
    assert_eq!(
        checkpointed_rows(&data, "scans"),
        600,
        "nothing lost, nothing twice"
    );
}
