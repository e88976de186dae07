//! Hostile and broken input at the ingest edge, against the real binary:
//! each case gets a specific 4xx or per-event code, the good events beside
//! the bad ones are kept, and the process stays up with bounded memory.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Server, get, sql, wait_ready};

const BODY_CAP: usize = 1 << 20;
const DECOMPRESSED_CAP: usize = 4 << 20;
const MAX_EVENTS: usize = 10_000;

fn good(id: &str) -> String {
    let venue = footfall_schemas::venue::reference();
    format!(
        "{{\"type\":\"badge_scan\",\"event_id\":\"{id}\",\"ts\":\"{}\",\"badge_id\":\"V-7\",\"scanner_id\":\"{}\"}}",
        chrono::Utc::now().to_rfc3339(),
        venue.scanners[0].id
    )
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

struct Answer {
    status: u16,
    json: serde_json::Value,
}

fn send(base: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut request = client.post(format!("{base}/v1/events")).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    match request.send() {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().unwrap_or_default();
            Answer {
                status,
                json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            }
        }
        // The server answered and closed before the client finished sending
        // an oversized body: allowed only where the test says so.
        Err(_) => Answer {
            status: 0,
            json: serde_json::Value::Null,
        },
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn hostile_bodies_get_specific_answers_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("footfall.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ingest]\nmax_body_bytes = {BODY_CAP}\nmax_decompressed_bytes = {DECOMPRESSED_CAP}\nmax_events = {MAX_EVENTS}\n"
        ),
    )
    .unwrap();
    let server = Server::spawn(
        "serve",
        &dir.path().join("data"),
        0,
        &["--config", cfg.to_str().unwrap()],
    );
    let base = server.base();
    wait_ready(&base, Duration::from_secs(60));
    let pid = server.child.id();
    let rss_before = peak_rss(pid);

    let whole_batch_cases: Vec<(&str, Vec<u8>, Vec<(&str, &str)>, u16, &str)> = vec![
        ("empty body", vec![], vec![], 400, "empty_batch"),
        (
            "blanks only",
            b" \n\r\n\t\n".to_vec(),
            vec![],
            400,
            "empty_batch",
        ),
        (
            "a million empty lines",
            vec![b'\n'; 1_000_000],
            vec![],
            400,
            "empty_batch",
        ),
        (
            "gzip bomb (64 MiB of newlines)",
            gzip(&vec![b'\n'; 64 << 20]),
            vec![("content-encoding", "gzip")],
            413,
            "too_large",
        ),
        (
            "corrupt gzip",
            b"\x1f\x8b\x08\x00garbage".to_vec(),
            vec![("content-encoding", "gzip")],
            400,
            "bad_gzip",
        ),
        (
            "unknown encoding",
            good("enc-1").into_bytes(),
            vec![("content-encoding", "br")],
            415,
            "unsupported_encoding",
        ),
        (
            "two encodings",
            good("enc-2").into_bytes(),
            vec![("content-encoding", "gzip, br")],
            415,
            "unsupported_encoding",
        ),
        (
            "form content type",
            good("ct-1").into_bytes(),
            vec![("content-type", "application/x-www-form-urlencoded")],
            415,
            "unsupported_media_type",
        ),
        (
            "multipart content type",
            good("ct-2").into_bytes(),
            vec![("content-type", "multipart/form-data; boundary=x")],
            415,
            "unsupported_media_type",
        ),
        (
            "array that never closes",
            format!("[{}", good("open-1")).into_bytes(),
            vec![],
            400,
            "malformed_batch",
        ),
        (
            "array not UTF-8",
            b"[\"\xff\xfe\"]".to_vec(),
            vec![],
            400,
            "malformed_batch",
        ),
        (
            "too many events",
            format!("[{}1]", "1,".repeat(MAX_EVENTS)).into_bytes(),
            vec![],
            413,
            "too_many_events",
        ),
    ];
    for (name, body, headers, status, code) in whole_batch_cases {
        let answer = send(&base, body, &headers);
        assert_eq!(answer.status, status, "{name}: {}", answer.json);
        assert_eq!(answer.json["code"], code, "{name}: {}", answer.json);
    }

    // Arrays nested deep: one element each, refused on its own (too large,
    // or past the JSON parser's depth limit), never a crash.
    for (depth, code) in [(100_000, "too_large"), (5_000, "parse")] {
        let body = format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
        let answer = send(&base, body.into_bytes(), &[]);
        assert_eq!(answer.status, 200, "{depth} deep: {}", answer.json);
        assert_eq!(answer.json["rejected"], 1, "{depth} deep: {}", answer.json);
        assert_eq!(
            answer.json["errors"][0]["code"], code,
            "{depth} deep: {}",
            answer.json
        );
    }

    // Over the body cap: 413, or the connection closed once the cap is
    // passed (the server does not read the rest).
    let over = send(&base, vec![b' '; 2 * BODY_CAP], &[]);
    assert!(
        over.status == 413 || over.status == 0,
        "body over the cap: {}",
        over.status
    );
    if over.status == 413 {
        assert_eq!(over.json["code"], "too_large");
    }

    // One batch of bad events around good ones: each bad one answered with
    // its own code, the good ones kept.
    let mut body = Vec::new();
    let mut line = |bytes: &[u8]| {
        body.extend_from_slice(bytes);
        body.push(b'\n');
    };
    line(good("mixed-1").as_bytes());
    line(b"{\"type\":\"badge_scan\",\"event_id\":\"\xff\xfe\"}");
    line(format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000)).as_bytes());
    line(&vec![b'{'; 20_000]);
    line(b"{\"type\":\"badge_scan\",\"event_id\":\"n1\",\"ts\":1e999999999,\"badge_id\":\"b\",\"scanner_id\":\"s\"}");
    line(b"{\"type\":\"badge_scan\",\"event_id\":123456789012345678901234567890,\"ts\":\"2026-02-16T10:00:00Z\",\"badge_id\":\"b\",\"scanner_id\":\"s\"}");
    line(format!(
        "{{\"type\":\"badge_scan\",\"event_id\":\"big\",\"ts\":\"2026-02-16T10:00:00Z\",\"badge_id\":\"{}\",\"scanner_id\":\"s\"}}",
        "B".repeat(15_000)
    ).as_bytes());
    line(b"null");
    line(b"\"just a string\"");
    line(b"{}");
    line(b"{\"type\":\"badge_scan\",\"type\":\"ticket\"}");
    line(b"{\"type\":\"badge_scan\",\"event_id\":\"nul\\u0000\",\"ts\":\"2026-02-16T10:00:00Z\",\"badge_id\":\"b\",\"scanner_id\":\"s\"}");
    line(good("mixed-2").as_bytes());
    let bad = 11;
    let answer = send(&base, body, &[("content-type", "application/x-ndjson")]);
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["accepted"], 2, "{}", answer.json);
    assert_eq!(answer.json["rejected"], bad, "{}", answer.json);
    let errors = answer.json["errors"].as_array().unwrap();
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (1..=bad).collect::<Vec<u64>>());
    for e in errors {
        assert!(
            !e["code"].as_str().unwrap().is_empty() && !e["message"].as_str().unwrap().is_empty(),
            "{e}"
        );
    }
    assert_eq!(errors[2]["code"], "too_large", "{}", errors[2]);

    // A million blank lines around one good event: the event counts.
    let mut body = vec![b'\n'; 500_000];
    body.extend_from_slice(good("blank-1").as_bytes());
    body.extend_from_slice(&vec![b'\n'; 500_000]);
    let answer = send(&base, body, &[]);
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["accepted"], 1);

    // Still up, every good event kept exactly once, bad ones kept as rejected.
    assert_eq!(get(&format!("{base}/healthz")).0, 200);
    wait_ready(&base, Duration::from_secs(30));
    let rows = sql(&base, "SELECT count(*) AS n FROM scans");
    assert_eq!(rows[0]["n"], 3);
    let rows = sql(&base, "SELECT count(*) AS n FROM rejected");
    assert!(rows[0]["n"].as_u64().unwrap() >= bad, "{rows:?}");

    // Memory: bounded by the caps, not by what was sent (64 MiB bomb).
    let grown = peak_rss(pid).saturating_sub(rss_before);
    eprintln!(
        "hostile input: peak RSS {} MiB before, grew {} MiB",
        rss_before >> 20,
        grown >> 20
    );
    assert!(grown < 256 << 20, "peak RSS grew {} MiB", grown >> 20);
}
