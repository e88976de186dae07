//! Golden SQL: a small hand-made fair (`tests/golden/`, described in its
//! README) is sent to the real binary over HTTP, and every query in
//! `tests/golden/sql/*.sql` must answer exactly what
//! `tests/golden/expected/<name>.csv` holds.
//!
//! The expected files are written by the test itself with
//! `FOOTFALL_BLESS=1 cargo test --release --workspace --test golden_views`,
//! then reviewed in the diff; they are never edited by hand. Badge
//! pseudonyms are shown as the badge ids they stand for (the test knows the
//! key), so that a reviewer can follow each visitor.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use footfall_ingest::Pseudonymiser;
use footfall_schemas::ids::BadgeId;
use support::{KEY_HEX, Keyed};

fn golden_dir() -> PathBuf {
    support::root("tests/golden")
}

/// Every badge id of the dataset, by its pseudonym.
fn badge_names(files: &[PathBuf]) -> BTreeMap<String, String> {
    let pseudonymiser = Pseudonymiser::new(&hex_key());
    let mut names = BTreeMap::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(badge) = event["badge_id"].as_str() {
                let id = BadgeId::parse(badge).unwrap();
                names.insert(pseudonymiser.pseudonym(&id), badge.to_owned());
            }
        }
    }
    names
}

fn hex_key() -> Vec<u8> {
    (0..KEY_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY_HEX[i..i + 2], 16).unwrap())
        .collect()
}

fn csv(base: &str, sql: &str) -> String {
    let response = reqwest::blocking::Client::new()
        .post(format!("{base}/v1/sql?format=csv"))
        .body(sql.to_owned())
        .send()
        .unwrap();
    let status = response.status();
    let text = response.text().unwrap();
    assert!(status.is_success(), "{sql}: {status}: {text}");
    text
}

#[test]
fn golden_queries_answer_what_was_reviewed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Keyed::start(&dir.path().join("data"), &golden_dir().join("venue.toml"));
    let batches = [
        golden_dir().join("batch-1.ndjson"),
        golden_dir().join("batch-2.ndjson"),
    ];
    // The second batch arrives later: a late upload, a duplicate, a retry.
    // 41 distinct events are accepted in all (33 scans, 8 tickets); the two
    // bad lines of the first batch are rejected.
    let accepted: u64 = batches
        .iter()
        .map(|b| server.send(&std::fs::read_to_string(b).unwrap(), 1000))
        .sum();
    assert_eq!(accepted, 41);
    server.wait_for_events(41, Duration::from_secs(30));

    let names = badge_names(&batches);
    let bless = std::env::var_os("FOOTFALL_BLESS").is_some();
    let mut queries: Vec<PathBuf> = std::fs::read_dir(golden_dir().join("sql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    queries.sort();
    assert!(queries.len() >= 10, "the golden queries are there");
    let mut failures = Vec::new();
    for query in &queries {
        let name = query.file_stem().unwrap().to_string_lossy().into_owned();
        let mut got = csv(&server.base, &std::fs::read_to_string(query).unwrap());
        for (pseudonym, badge) in &names {
            got = got.replace(pseudonym, badge);
        }
        let expected_path = golden_dir().join("expected").join(format!("{name}.csv"));
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} is missing; run with FOOTFALL_BLESS=1",
                expected_path.display()
            )
        });
        if got != want {
            failures.push(format!("--- {name}: want\n{want}--- got\n{got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "golden results differ (rerun with FOOTFALL_BLESS=1 and review the diff if the change is intended):\n{}",
        failures.join("\n")
    );
}
