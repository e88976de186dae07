//! `footfall export`: the golden fair is sent to the real binary, exported,
//! and `tests/independent/export_check.py` opens the Parquet files with
//! DuckDB and checks every table and view against `POST /v1/sql`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Keyed, root};

#[test]
fn the_export_opens_in_duckdb_with_the_same_answers_as_sql() {
    let python = support::python();
    let dir = tempfile::tempdir().unwrap();
    let golden = root("tests/golden");
    let server = Keyed::start(&dir.path().join("data"), &golden.join("venue.toml"));
    let accepted: u64 = ["batch-1.ndjson", "batch-2.ndjson"]
        .iter()
        .map(|b| server.send(&std::fs::read_to_string(golden.join(b)).unwrap(), 1000))
        .sum();
    server.wait_for_events(accepted, Duration::from_secs(30));

    let out = dir.path().join("export");
    let status = Command::new(support::BIN)
        .args(["export", "--server", &server.base, "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("schema.json")).unwrap()).unwrap();
    let tables: Vec<&str> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "scans",
        "tickets",
        "rejected",
        "stands",
        "opening_hours",
        "footfall_hourly",
        "stand_visits",
        "occupancy",
        "no_shows",
    ] {
        assert!(tables.contains(&want), "{want} is exported: {tables:?}");
    }
    let scans = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "scans")
        .unwrap();
    assert_eq!(scans["partitioned_by"], "local_day");
    assert!(
        out.join("scans/2026-02-15.parquet").exists(),
        "scans are written by local day"
    );

    let output = Command::new(python)
        .arg(root("tests/independent/export_check.py"))
        .arg("--export")
        .arg(&out)
        .args(["--base", &server.base])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the export differs from SQL:\n{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.ends_with("agree")).count(),
        tables.len(),
        "every table was compared:\n{report}"
    );
}
