//! Retention of rejected raw text against the real binary (issue 6): with
//! `[query] rejected_retention_s` of a few seconds, the raw text leaves
//! `rejected` for an organizer's SQL while the counts by code stay; a
//! restart does not bring it back, nor does a replay of the whole log (the
//! checkpoints and tables lost), and the log still takes new rejections at
//! fresh offsets afterwards.

mod common;

use common::{BIN, Server, wait_ready};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Retention of the test: long enough to see the raw text first on a
/// loaded machine, short enough for CI.
const RETENTION_S: u64 = 8;

/// A token of `role`, made by the binary; answers (token, auth file entry).
fn token(role: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args(["auth", "token", "--name", role, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success(), "footfall auth token --role {role}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let token = stderr.trim().rsplit(' ').next().unwrap().to_owned();
    (token, String::from_utf8(out.stdout).unwrap())
}

struct Tokens {
    scanner: String,
    organizer: String,
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn post_events(base: &str, tokens: &Tokens, body: &str) -> serde_json::Value {
    let r = client()
        .post(format!("{base}/v1/events"))
        .bearer_auth(&tokens.scanner)
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().unwrap()
}

fn sql(base: &str, tokens: &Tokens, query: &str) -> Vec<serde_json::Value> {
    let r = client()
        .post(format!("{base}/v1/sql?format=json"))
        .bearer_auth(&tokens.organizer)
        .body(query.to_owned())
        .send()
        .unwrap();
    let status = r.status();
    let text = r.text().unwrap();
    assert!(status.is_success(), "{query}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Per code: (rows, rows still holding raw text), and the rows whose raw
/// text names the secret badge.
fn rejected(base: &str, tokens: &Tokens) -> (Vec<(String, u64, u64)>, u64) {
    let rows = sql(
        base,
        tokens,
        "SELECT code, count(*) AS n, sum(CASE WHEN raw = '' THEN 0 ELSE 1 END) AS with_raw \
         FROM rejected GROUP BY code ORDER BY code",
    );
    let by_code = rows
        .iter()
        .map(|r| {
            (
                r["code"].as_str().unwrap().to_owned(),
                r["n"].as_u64().unwrap(),
                r["with_raw"].as_u64().unwrap(),
            )
        })
        .collect();
    let secret = sql(
        base,
        tokens,
        "SELECT count(*) AS n FROM rejected WHERE raw LIKE '%SECRET-BADGE%'",
    );
    (by_code, secret[0]["n"].as_u64().unwrap())
}

fn scans(base: &str, tokens: &Tokens) -> u64 {
    sql(base, tokens, "SELECT count(*) AS n FROM scans")[0]["n"]
        .as_u64()
        .unwrap()
}

/// Polls until `done` holds, for up to a minute.
fn until<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = probe();
        if done(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{what}: still {got:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start(data: &Path, auth: &Path, config: &Path) -> Server {
    let server = Server::spawn(
        "serve",
        data,
        0,
        &[
            "--auth",
            auth.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    wait_ready(&server.base(), Duration::from_secs(60));
    server
}

#[test]
fn raw_text_expires_counts_stay_and_nothing_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (scanner, scanner_entry) = token("scanner");
    let (organizer, organizer_entry) = token("organizer");
    let tokens = Tokens { scanner, organizer };
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, format!("{scanner_entry}{organizer_entry}")).unwrap();
    let config = dir.path().join("footfall.toml");
    std::fs::write(
        &config,
        format!("[query]\nflush_interval_ms = 200\nrejected_retention_s = {RETENTION_S}\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = start(&data, &auth, &config);
    let base = server.base();

    let scanner_id = &footfall_schemas::venue::reference().scanners[0].id;
    let ts = chrono::Utc::now().to_rfc3339();
    let good = |n: u32| {
        format!(
            r#"{{"type":"badge_scan","event_id":"ret-{n}","ts":"{ts}","badge_id":"V-{n}","scanner_id":"{scanner_id}"}}"#
        )
    };
    let body = [
        good(1),
        good(2),
        // Cut mid-line: `parse`.
        r#"{"type":"badge_scan","event_id":"ret-3","badge_id":"SECRET-BADGE-3"#.to_owned(),
        // A field too many: `unknown_field`.
        format!(
            r#"{{"type":"badge_scan","event_id":"ret-4","ts":"{ts}","badge_id":"SECRET-BADGE-4","scanner_id":"{scanner_id}","colour":"blue"}}"#
        ),
        format!(
            r#"{{"type":"badge_scan","event_id":"ret-5","ts":"{ts}","badge_id":"SECRET-BADGE-5","scanner_id":"{scanner_id}","colour":"red"}}"#
        ),
    ]
    .join("\n");
    let sent = Instant::now();
    let answer = post_events(&base, &tokens, &body);
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(3))
    );

    let fresh = until(
        "the rejected rows are queryable",
        || rejected(&base, &tokens),
        |(codes, _)| codes.iter().map(|c| c.1).sum::<u64>() == 3,
    );
    // Only meaningful while the limit has not passed yet.
    if sent.elapsed() < Duration::from_secs(RETENTION_S) {
        assert_eq!(
            fresh,
            (
                vec![("parse".into(), 1, 1), ("unknown_field".into(), 2, 2)],
                3
            ),
            "fresh rows keep their raw text"
        );
    }

    let expired = (
        vec![("parse".into(), 1, 0), ("unknown_field".into(), 2, 0)],
        0,
    );
    until(
        "the raw text expires",
        || rejected(&base, &tokens),
        |got| *got == expired,
    );
    assert!(sent.elapsed() >= Duration::from_secs(RETENTION_S));
    assert_eq!(scans(&base, &tokens), 2, "accepted events are untouched");

    // A restart reads the committed files: still no raw text.
    assert!(server.terminate().success());
    let server = start(&data, &auth, &config);
    let base = server.base();
    assert_eq!(rejected(&base, &tokens), expired);
    assert_eq!(scans(&base, &tokens), 2);

    // A replay of the whole log (checkpoints and tables lost): the log
    // dropped the expired records but the newest, which it kept emptied
    // so that its offset is not handed out again.
    assert!(server.terminate().success());
    std::fs::remove_dir_all(data.join("checkpoints")).unwrap();
    std::fs::remove_dir_all(data.join("tables")).unwrap();
    let server = start(&data, &auth, &config);
    let base = server.base();
    assert_eq!(scans(&base, &tokens), 2, "the scans come back from the log");
    assert_eq!(
        rejected(&base, &tokens),
        (vec![("unknown_field".into(), 1, 0)], 0)
    );

    // A new rejection gets a fresh offset and is materialised, raw text
    // and all.
    let sent = Instant::now();
    let answer = post_events(
        &base,
        &tokens,
        r#"{"type":"badge_scan","event_id":"ret-6","badge_id":"SECRET-BADGE-6"#,
    );
    assert_eq!(answer["rejected"].as_u64(), Some(1));
    let after = until(
        "the new rejection is queryable",
        || rejected(&base, &tokens),
        |(codes, _)| codes.iter().map(|c| c.1).sum::<u64>() == 2,
    );
    if sent.elapsed() < Duration::from_secs(RETENTION_S) {
        assert_eq!(
            after,
            (
                vec![("parse".into(), 1, 1), ("unknown_field".into(), 1, 0)],
                1
            )
        );
    }
}
