//! The records kept in the event log: enriched events as plain JSON, readable
//! by any Kafka client. Ingest writes them; the materialiser reads them.
//!
//! Times are RFC 3339 in UTC with milliseconds; the badge is the pseudonym
//! (hex of a keyed hash), never the raw badge id.

use serde::{Deserialize, Serialize};

/// A badge scan with its zone resolved from the venue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRecord<'a> {
    pub v: u32,
    #[serde(borrow)]
    pub event_id: &'a str,
    pub ts: &'a str,
    pub received_at: &'a str,
    pub badge: &'a str,
    pub scanner_id: &'a str,
    pub zone_kind: &'a str,
    pub zone_id: &'a str,
    pub pole_id: Option<&'a str>,
    pub stand_id: Option<&'a str>,
    pub room_id: Option<&'a str>,
    pub direction: &'a str,
}

/// A ticket event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRecord<'a> {
    pub v: u32,
    #[serde(borrow)]
    pub event_id: &'a str,
    pub ts: &'a str,
    pub received_at: &'a str,
    pub ticket_id: &'a str,
    pub badge: &'a str,
    pub action: &'a str,
    pub ticket_type: &'a str,
    pub channel: &'a str,
    /// Decimal string, two places.
    pub price: &'a str,
    pub currency: &'a str,
}

/// An event that was refused, kept with its raw text so it can be examined
/// and replayed. Raw text may hold personal data: organizers only, retention
/// limited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectedRecord<'a> {
    pub v: u32,
    pub received_at: &'a str,
    pub code: &'a str,
    #[serde(borrow)]
    pub message: std::borrow::Cow<'a, str>,
    pub event_id: Option<std::borrow::Cow<'a, str>>,
    /// The raw event text (cut to the per-event limit).
    pub raw: std::borrow::Cow<'a, str>,
}

/// Formats a UTC instant the way records carry it.
pub fn format_ts(ts: chrono::DateTime<chrono::Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_record_round_trips() {
        let r = ScanRecord {
            v: 1,
            event_id: "e\"1",
            ts: "2026-02-16T10:03:12.120Z",
            received_at: "2026-02-16T10:03:13.000Z",
            badge: "ab",
            scanner_id: "stand-P001",
            zone_kind: "stand",
            zone_id: "P001",
            pole_id: Some("products"),
            stand_id: Some("P001"),
            room_id: None,
            direction: "in",
        };
        let text = serde_json::to_string(&r).unwrap();
        // Escaped strings cannot be borrowed; the event-id rule excludes them.
        assert!(serde_json::from_str::<ScanRecord>(&text).is_err());
        let r = ScanRecord {
            event_id: "e1",
            ..r
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ScanRecord>(&text).unwrap(), r);
    }
}
