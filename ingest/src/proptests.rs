//! Properties of the ingest edge: no body panics the batch reader or the
//! event checks, and a good event is accepted wherever it sits among bad
//! ones.

use bytes::Bytes;
use chrono::Utc;
use proptest::prelude::*;

use crate::Pseudonymiser;
use crate::batch::{self, RawEvent};
use crate::config::IngestConfig;
use crate::enrich::{Enricher, Verdict};
use footfall_schemas::record::format_ts;

fn config() -> IngestConfig {
    IngestConfig {
        max_body_bytes: 64 << 10,
        max_decompressed_bytes: 256 << 10,
        max_event_bytes: 2 << 10,
        max_events: 200,
        ..IngestConfig::default()
    }
}

/// Judges every event of a body as the route does; the verdicts, or the
/// whole-batch error.
fn judge_body(body: &[u8], encoding: Option<&str>) -> Result<Vec<bool>, crate::IngestError> {
    let venue = footfall_schemas::venue::reference();
    let pseudonymiser = Pseudonymiser::new(&[7u8; 32]);
    let config = config();
    let received_at = Utc::now();
    let enricher = Enricher {
        venue: &venue,
        pseudonymiser: &pseudonymiser,
        config: &config,
        received_at,
        received_text: format_ts(received_at),
    };
    let decoded = batch::decode(Bytes::copy_from_slice(body), encoding, &config)?;
    let events = batch::split(&decoded, &config)?;
    Ok(events
        .iter()
        .map(|raw: &RawEvent<'_>| match enricher.judge(raw) {
            Verdict::Accept(_) => true,
            Verdict::Reject(error) => {
                assert!(!error.message.is_empty(), "a rejection says why");
                false
            }
        })
        .collect())
}

/// JSON-looking text: the shapes that reach the parser's corners (deep
/// nesting, huge numbers, odd strings, the event's own keys).
fn jsonish() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "-?[0-9]{1,400}(\\.[0-9]{1,50})?([eE][+-]?[0-9]{1,12})?",
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
        Just("\"2026-02-16T10:03:12Z\"".to_owned()),
        Just("\"badge_scan\"".to_owned()),
        Just("\"ticket\"".to_owned()),
        Just("\"gate-n-in\"".to_owned()),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        let key = prop_oneof![
            Just("type"),
            Just("event_id"),
            Just("ts"),
            Just("badge_id"),
            Just("scanner_id"),
            Just("direction"),
            Just("price"),
            Just("x"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key, inner), 0..8).prop_map(|kv| {
                let fields: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

fn good(n: usize) -> String {
    format!(
        "{{\"type\":\"badge_scan\",\"event_id\":\"p-{n}\",\"ts\":\"2026-02-16T10:03:12Z\",\"badge_id\":\"V-{n}\",\"scanner_id\":\"{}\"}}",
        footfall_schemas::venue::reference().scanners[0].id
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_bytes_panic_the_edge(
        body in prop::collection::vec(any::<u8>(), 0..4096),
        encoding in prop::option::of(prop_oneof![Just("gzip"), Just("identity"), Just("br"), Just("")]),
    ) {
        let _ = judge_body(&body, encoding);
    }

    #[test]
    fn no_gzip_body_panics_the_edge(body in prop::collection::vec(any::<u8>(), 0..4096)) {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&body).expect("writing to a Vec cannot fail");
        let gz = enc.finish().expect("finishing into a Vec cannot fail");
        let _ = judge_body(&gz, Some("gzip"));
        // A cut-off stream too.
        let _ = judge_body(&gz[..gz.len() / 2], Some("gzip"));
    }

    #[test]
    fn no_json_panics_the_checks(lines in prop::collection::vec(jsonish(), 1..20)) {
        let ndjson = lines.join("\n");
        let _ = judge_body(ndjson.as_bytes(), None);
        let array = format!("[{}]", lines.join(","));
        let _ = judge_body(array.as_bytes(), None);
    }

    #[test]
    fn good_events_are_kept_among_bad_ones(
        bad in prop::collection::vec(prop_oneof![
            jsonish(),
            "[^\n]{1,200}",
        ], 0..20),
        positions in prop::collection::vec(any::<prop::sample::Index>(), 1..5),
    ) {
        // Bad lines as they come (blank ones are skipped, not counted).
        let mut lines: Vec<String> = bad.into_iter().filter(|l| !l.trim().is_empty()).collect();
        let mut wanted = Vec::new();
        for (n, at) in positions.iter().enumerate() {
            // The first good event leads: a body whose first byte is `[` is
            // a JSON array by contract, not NDJSON.
            let i = if n == 0 { 0 } else { at.index(lines.len() + 1) };
            lines.insert(i, good(n));
            wanted.push(good(n));
        }
        let verdicts = judge_body(lines.join("\n").as_bytes(), None)
            .expect("a batch with good events is never refused whole");
        prop_assert_eq!(verdicts.len(), lines.len());
        for (line, accepted) in lines.iter().zip(&verdicts) {
            if wanted.contains(line) {
                prop_assert!(*accepted, "{} refused", line);
            }
        }
    }
}
