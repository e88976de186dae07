//! Arbitrary bodies through the ingest edge: content-type check, gzip or
//! identity decoding, NDJSON or JSON-array splitting, event parsing, the
//! venue and clock checks, and enrichment (`footfall_ingest::fuzzing`, the
//! route's own code without HTTP or a log).
//!
//! Input: one selector byte, then the body. The selector picks the
//! `Content-Type`, the `Content-Encoding` (gzip either as the fuzzer wrote
//! it, to reach the decoder's corners, or compressed here, so mutations
//! reach the parser behind it) and tight or default limits.
//!
//! Invariants: nothing panics; a refused batch is a client error; in an
//! accepted batch every event has exactly one outcome and one record, the
//! count matches an independent count of the events, each record is a JSON
//! object, accepted records carry their event id for deduplication, and
//! rejected ones carry a known code and a message.

#![no_main]

use std::io::Write;

use footfall_eventlog::Topic;
use footfall_ingest::IngestConfig;
use footfall_ingest::IngestError;
use footfall_ingest::fuzzing::{Outcome, judge};
use footfall_schemas::events::RejectCode;
use libfuzzer_sys::{Corpus, fuzz_target};
use serde_json::Value;

const CONTENT_TYPES: [Option<&[u8]>; 4] = [
    None,
    Some(b"application/x-ndjson"),
    Some(b"Application/JSON; charset=utf-8"),
    Some(b"application/x-www-form-urlencoded"),
];

fuzz_target!(|data: &[u8]| -> Corpus {
    let Some((&selector, body)) = data.split_first() else {
        return Corpus::Reject;
    };
    let content_type = CONTENT_TYPES[usize::from(selector & 0b11)];
    // The plain text behind the body, when this target knows it.
    let (encoding, wire, plain): (Option<&[u8]>, Vec<u8>, Option<&[u8]>) =
        match (selector >> 2) & 0b11 {
            0 => (None, body.to_vec(), Some(body)),
            1 => (Some(b"gzip"), gzip(body), Some(body)),
            2 => (Some(b"x-gzip"), body.to_vec(), None),
            _ => (Some(b" Identity "), body.to_vec(), Some(body)),
        };
    let config = if selector & 0b1_0000 != 0 {
        IngestConfig {
            max_body_bytes: 4096,
            max_decompressed_bytes: 8192,
            max_event_bytes: 256,
            max_events: 8,
            ..IngestConfig::default()
        }
    } else {
        IngestConfig::default()
    };

    let batch = match judge(&wire, content_type, encoding, &config) {
        Ok(batch) => batch,
        Err(e) => {
            assert!(e.status().is_client_error(), "{e} is not a client error");
            if selector & 0b11 == 3 {
                assert!(matches!(e, IngestError::UnsupportedMediaType(_)), "{e}");
            }
            return Corpus::Keep;
        }
    };
    assert_ne!(selector & 0b11, 3, "a form body was judged");
    assert_eq!(batch.outcomes.len(), batch.records.len());
    if let Some(plain) = plain {
        assert_eq!(
            batch.outcomes.len(),
            count_events(plain),
            "events miscounted"
        );
    }
    for (outcome, record) in batch.outcomes.iter().zip(&batch.records) {
        let value: Value = serde_json::from_slice(&record.value)
            .unwrap_or_else(|e| panic!("record is not JSON ({e}): {:?}", record.value));
        assert!(value.is_object(), "record is not an object: {value}");
        match outcome {
            Outcome::Accepted(topic) => {
                assert_eq!(record.topic, *topic);
                assert_ne!(record.topic, Topic::Rejected);
                let id = record
                    .dedup_id
                    .as_deref()
                    .expect("accepted records dedup by id");
                assert_eq!(value["event_id"].as_str(), Some(id));
                assert!(
                    !record.key.is_empty(),
                    "accepted records are keyed by badge"
                );
            }
            Outcome::Rejected { code, message } => {
                assert!(
                    RejectCode::ALL.iter().any(|c| c.as_str() == *code),
                    "{code}"
                );
                assert!(!message.is_empty(), "a rejection says why");
                assert_eq!(record.topic, Topic::Rejected);
                assert_eq!(value["code"].as_str(), Some(*code));
                assert!(record.dedup_id.is_none());
            }
        }
    }
    Corpus::Keep
});

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(body)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("finishing into a Vec cannot fail")
}

/// The events in an accepted body, counted without the edge's splitter: a
/// JSON array's elements, or NDJSON's non-blank lines.
fn count_events(plain: &[u8]) -> usize {
    let first = plain.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(plain)
            .expect("an accepted array parses")
            .len()
    } else {
        plain
            .split(|&b| b == b'\n')
            .filter(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
            .count()
    }
}
