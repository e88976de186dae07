//! `footfall forget --badge ID` against the real binary: refused while the
//! server runs; then the visitor's scans, tickets and rejected raw text are
//! gone from every table and view, others' rows untouched, and a replay of
//! the log (checkpoints lost) does not bring their scans back.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, Server, post, sql, wait_ready};

/// During the reference fair's opening hours.
const TS: &str = "2026-02-16T10:30:00Z";

fn scan(id: &str, badge: &str, scanner: &str) -> String {
    format!(
        "{{\"type\":\"badge_scan\",\"event_id\":\"{id}\",\"ts\":\"{TS}\",\"badge_id\":\"{badge}\",\"scanner_id\":\"{scanner}\"}}\n"
    )
}

fn counts(base: &str) -> (u64, u64, u64, u64) {
    let n = |q: &str| sql(base, q)[0]["n"].as_u64().unwrap();
    (
        n("SELECT count(*) AS n FROM scans"),
        n("SELECT count(*) AS n FROM tickets"),
        n("SELECT count(*) AS n FROM rejected WHERE raw LIKE '%V-FORGET-ME%'"),
        n(
            "SELECT CAST(coalesce(sum(visitors), 0) AS BIGINT) AS n FROM footfall_hourly WHERE level = 'venue'",
        ),
    )
}

fn forget(data: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(["forget", "--badge", "V-FORGET-ME", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_forgotten_visitor_is_gone_from_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let venue = footfall_schemas::venue::reference();
    let gate = venue
        .scanners
        .iter()
        .find(|s| s.zone_kind == footfall_schemas::ZoneKind::Gate)
        .map(|s| s.id.clone())
        .expect("the reference fair has gates");
    let server = Server::start(&data, 0);
    let base = server.base();
    wait_ready(&base, Duration::from_secs(60));
    let mut batch = String::new();
    for i in 0..5 {
        batch += &scan(&format!("f-{i}"), "V-FORGET-ME", &gate);
        batch += &scan(&format!("k-{i}"), "V-KEEP", &gate);
    }
    batch += &format!(
        "{{\"type\":\"ticket\",\"event_id\":\"t-1\",\"ts\":\"{TS}\",\"ticket_id\":\"T-1\",\"badge_id\":\"V-FORGET-ME\",\"action\":\"issued\",\"ticket_type\":\"visitor\",\"channel\":\"online\",\"price\":\"20.00\",\"currency\":\"MAD\"}}\n"
    );
    // Refused (unknown scanner): kept as raw text in `rejected`.
    batch += &scan("r-1", "V-FORGET-ME", "no-such-scanner");
    batch += &scan("r-2", "V-KEEP", "no-such-scanner");
    let (code, body) = post(&format!("{base}/v1/events"), &batch);
    assert_eq!(code, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counts(&base).0 < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the scans are queryable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = counts(&base);
    assert_eq!((before.0, before.1, before.2), (10, 1, 1));

    // Not while the server owns the data dir.
    let refused = forget(&data);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop footfall"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(server.terminate().success());

    let done = forget(&data);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(said.contains("5 scans, 1 tickets, 1 rejected"), "{said}");
    let again = forget(&data);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 scans, 0 tickets, 0 rejected"));

    let server = Server::start(&data, 0);
    wait_ready(&server.base(), Duration::from_secs(60));
    let after = counts(&server.base());
    assert_eq!((after.0, after.1, after.2), (5, 0, 0), "before {before:?}");
    assert!(
        after.3 < before.3,
        "venue visitors recomputed: {before:?} → {after:?}"
    );
    let others = sql(
        &server.base(),
        "SELECT count(*) AS n FROM rejected WHERE raw LIKE '%V-KEEP%'",
    );
    assert_eq!(others[0]["n"], 1, "others' rows stay");
    assert!(server.terminate().success());

    // Checkpoints and tables lost: the log is read again from the start,
    // and the forgotten visitor's scans and tickets are skipped.
    std::fs::remove_dir_all(data.join("checkpoints")).unwrap();
    std::fs::remove_dir_all(data.join("tables")).unwrap();
    let server = Server::start(&data, 0);
    wait_ready(&server.base(), Duration::from_secs(60));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counts(&server.base()).0 < 5 {
        assert!(std::time::Instant::now() < deadline, "the log is replayed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let replayed = counts(&server.base());
    assert_eq!(
        (replayed.0, replayed.1),
        (5, 0),
        "a replay skips the forgotten"
    );
}
