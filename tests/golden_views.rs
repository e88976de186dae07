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

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use footfall_ingest::Pseudonymiser;
use footfall_schemas::ids::BadgeId;

/// The pseudonymisation key of the test's data dir, so pseudonyms are known.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `footfall serve` on the golden venue; killed on drop.
struct Golden {
    child: Child,
    base: String,
}

impl Drop for Golden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &Path) -> Golden {
    use std::io::{BufRead, BufReader};
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(data_dir.join("pseudonym.key"), KEY_HEX).unwrap();
    let mut child = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--venue"])
        .arg(golden_dir().join("venue.toml"))
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
    Golden { child, base }
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

fn post_ndjson(base: &str, body: String) -> serde_json::Value {
    let response = reqwest::blocking::Client::new()
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().unwrap()
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

fn count(base: &str, sql: &str) -> u64 {
    common::sql(base, sql)[0]["n"].as_u64().unwrap()
}

#[test]
fn golden_queries_answer_what_was_reviewed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"));
    let batches = [
        golden_dir().join("batch-1.ndjson"),
        golden_dir().join("batch-2.ndjson"),
    ];
    // The second batch arrives later: a late upload, a duplicate, a retry.
    let first = post_ndjson(&server.base, std::fs::read_to_string(&batches[0]).unwrap());
    assert_eq!(first["rejected"], 2, "{first}");
    let second = post_ndjson(&server.base, std::fs::read_to_string(&batches[1]).unwrap());
    assert_eq!(second["accepted"], 1, "{second}");
    assert_eq!(second["duplicates"], 2, "{second}");

    // 41 distinct events were accepted in all (33 scans, 8 tickets).
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(
        &server.base,
        "SELECT (SELECT count(*) FROM scans) + (SELECT count(*) FROM tickets) AS n",
    ) != 41
    {
        assert!(Instant::now() < deadline, "the events never became queryable");
        std::thread::sleep(Duration::from_millis(50));
    }

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
