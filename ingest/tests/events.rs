//! `POST /v1/events` through the router, on a real embedded log: every
//! rejection code, with the good events beside a bad one kept.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use footfall_eventlog::embedded::{EmbeddedConfig, EmbeddedLog};
use footfall_eventlog::{EventLog, Polled, Topic};
use footfall_ingest::{BatchAnswer, Ingest, IngestConfig, IngestMetrics, Pseudonymiser};
use http_body_util::BodyExt;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    log: Arc<EmbeddedLog>,
    app: axum::Router,
}

fn fixture(config: IngestConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap());
    let ingest = Ingest {
        venue: Arc::new(footfall_schemas::venue::reference()),
        log: log.clone(),
        pseudonymiser: Pseudonymiser::new(b"test key, sixteen bytes"),
        config,
        metrics: IngestMetrics::register(&prometheus::Registry::new()).unwrap(),
    };
    Fixture {
        _dir: dir,
        log,
        app: footfall_ingest::router(Arc::new(ingest)),
    }
}

fn scanner(kind: &str) -> String {
    let venue = footfall_schemas::venue::reference();
    venue
        .scanners
        .iter()
        .find(|s| s.zone_kind.as_str() == kind)
        .unwrap()
        .id
        .clone()
}

fn scan(id: &str) -> String {
    format!(
        r#"{{"type":"badge_scan","event_id":"{id}","ts":"2026-02-16T10:03:12.120Z","badge_id":"V-1","scanner_id":"{}"}}"#,
        scanner("stand")
    )
}

async fn post(
    app: &axum::Router,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post("/v1/events");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn stored(log: &EmbeddedLog, topic: Topic) -> Vec<serde_json::Value> {
    let mut sub = log.subscribe("t", Arc::new(|_| 0)).await.unwrap();
    let mut out = Vec::new();
    loop {
        match sub.poll(10_000, Duration::from_millis(20)).await.unwrap() {
            Polled::Records(r) if r.is_empty() => return out,
            Polled::Records(r) => out.extend(
                r.into_iter()
                    .filter(|d| d.stream.topic == topic)
                    .map(|d| serde_json::from_slice(&d.value).unwrap()),
            ),
            _ => {}
        }
    }
}

#[tokio::test]
async fn every_rejection_code_keeps_the_good_events_beside_it() {
    let f = fixture(IngestConfig {
        max_event_bytes: 1024,
        ..IngestConfig::default()
    });
    let good = scan("ok-1");
    let cases = [
        ("parse", r#"{"type":"badge_scan","#.to_owned()),
        ("schema", good.replace(r#""badge_id":"V-1","#, "")),
        (
            "unknown_field",
            good.replace(r#""type""#, r#""colour":"red","type""#),
        ),
        ("unknown_scanner", good.replace(&scanner("stand"), "nope")),
        (
            "clock_skew",
            good.replace("2026-02-16T10:03:12.120Z", "2099-01-01T00:00:00Z"),
        ),
        ("too_large", good.replace("V-1", &"x".repeat(2000))),
    ];
    for (i, (code, bad)) in cases.iter().enumerate() {
        let before = scan(&format!("before-{i}"));
        let after = scan(&format!("after-{i}"));
        let body = format!(
            "{before}\n{}\n{after}\n",
            bad.replace("ok-1", &format!("bad-{i}"))
        );
        let (status, answer) = post(&f.app, body.into_bytes(), &[]).await;
        assert_eq!(status, StatusCode::OK, "{code}: {answer}");
        let answer: BatchAnswer = serde_json::from_value(answer).unwrap();
        assert_eq!(
            (answer.accepted, answer.duplicates, answer.rejected),
            (2, 0, 1),
            "{code}"
        );
        assert_eq!(answer.errors[0].index, 1, "{code}");
        assert_eq!(
            answer.errors[0].code, *code,
            "{code}: {}",
            answer.errors[0].message
        );
    }
    let scans = stored(&f.log, Topic::Scans).await;
    assert_eq!(
        scans.len(),
        2 * cases.len(),
        "every good event is in the log"
    );
    let rejected = stored(&f.log, Topic::Rejected).await;
    let codes: Vec<_> = rejected
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        codes,
        cases.iter().map(|(c, _)| c.to_string()).collect::<Vec<_>>()
    );
    // The raw badge id is stored nowhere in the scans stream.
    assert!(scans.iter().all(|s| !s.to_string().contains("V-1")));
}

#[tokio::test]
async fn duplicates_within_and_across_batches_count_once() {
    let f = fixture(IngestConfig::default());
    let body = format!("{}\n{}\n{}", scan("d-1"), scan("d-1"), scan("d-2"));
    let (_, a) = post(&f.app, body.clone().into_bytes(), &[]).await;
    assert_eq!(
        (a["accepted"].as_u64(), a["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    let (_, a) = post(&f.app, body.into_bytes(), &[]).await;
    assert_eq!(
        (a["accepted"].as_u64(), a["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(stored(&f.log, Topic::Scans).await.len(), 2);
}

#[tokio::test]
async fn arrays_gzip_and_batch_level_errors() {
    let f = fixture(IngestConfig {
        max_body_bytes: 4096,
        max_decompressed_bytes: 8192,
        ..IngestConfig::default()
    });
    let (status, a) = post(&f.app, format!("[{}, 42]", scan("a-1")).into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (a["accepted"].as_u64(), a["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(a["errors"][0]["code"], "parse");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(scan("g-1").as_bytes()).unwrap();
    let (status, a) = post(
        &f.app,
        gz.finish().unwrap(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!((status, a["accepted"].as_u64()), (StatusCode::OK, Some(1)));

    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b' '; 1 << 20]).unwrap();
    let (status, a) = post(
        &f.app,
        bomb.finish().unwrap(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{a}");

    let (status, a) = post(&f.app, vec![b'\n'; 5000], &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{a}");
    let (status, a) = post(&f.app, b"\n\n".to_vec(), &[]).await;
    assert_eq!(
        (status, a["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_batch"))
    );
    let (status, _) = post(
        &f.app,
        scan("b-1").into_bytes(),
        &[("content-encoding", "br")],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = post(
        &f.app,
        scan("b-2").into_bytes(),
        &[(header::CONTENT_TYPE.as_str(), "application/xml")],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, a) = post(&f.app, b"[{\"a\":1},".to_vec(), &[]).await;
    assert_eq!(
        (status, a["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_batch"))
    );
    // Invalid UTF-8 on one line spoils only that line.
    let mut body = scan("u-1").into_bytes();
    body.extend_from_slice(b"\n\xff\xfe\n");
    body.extend_from_slice(scan("u-2").as_bytes());
    let (status, a) = post(&f.app, body, &[]).await;
    assert_eq!(
        (
            status,
            a["accepted"].as_u64(),
            a["errors"][0]["code"].as_str()
        ),
        (StatusCode::OK, Some(2), Some("parse"))
    );
}
