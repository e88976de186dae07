//! The views against an independent computation: the simulator writes a few
//! days of the reference fair with scanner faults (retries, late uploads,
//! skewed clocks, malformed lines) as raw NDJSON; the file is sent to the
//! real binary, and `tests/independent/views.py` (Python with DuckDB,
//! written from docs/sql.md) computes every view from the same file and
//! compares it, row for row, with `POST /v1/sql`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Keyed, root};

/// Simulated days by default: enough for returning visitors, pole flows,
/// sessions and the time-zone switch of the first day, in about a minute.
/// `FOOTFALL_INDEPENDENT_DAYS=7` checks the whole simulated week.
const DAYS: &str = "3";

#[test]
fn views_equal_an_independent_duckdb_computation() {
    let python = support::python();
    let days = std::env::var("FOOTFALL_INDEPENDENT_DAYS").unwrap_or_else(|_| DAYS.into());
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let status = Command::new(support::BIN)
        .args(["sim", "--days", &days, "--seed", "21", "--out"])
        .arg(&events)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    let venue = root("venues/agadir-sse-2026.toml");
    let server = Keyed::start(&dir.path().join("data"), &venue);
    let accepted = server.send(&std::fs::read_to_string(&events).unwrap(), 5000);
    assert!(
        accepted > 100_000,
        "a few days of the fair: {accepted} events"
    );
    server.wait_for_events(accepted, Duration::from_secs(120));

    let output = Command::new(python)
        .arg(root("tests/independent/views.py"))
        .arg("--venue")
        .arg(&venue)
        .arg("--events")
        .arg(&events)
        .arg("--key-file")
        .arg(server.data_dir.join("pseudonym.key"))
        .args(["--base", &server.base])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the views differ from the independent computation:\n{report}"
    );
    for view in [
        "stand_visits",
        "session_attendance",
        "pole_flows",
        "daily_attendance",
        "occupancy",
        "ticket_sales",
        "no_shows",
    ] {
        assert!(
            report.contains(&format!("{view}: ")) && report.contains("rows agree"),
            "{view} was compared:\n{report}"
        );
    }
}
