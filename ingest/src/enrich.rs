//! From a parsed event to the log record: venue checks (known scanner),
//! clock checks, enrichment with the zone, and pseudonymisation.

use chrono::{DateTime, Utc};
use footfall_eventlog::{Append, Topic};
use footfall_schemas::events::{Event, EventError, RejectCode, parse_event, truncate};
use footfall_schemas::record::{RejectedRecord, ScanRecord, TicketRecord, format_ts};
use footfall_schemas::{SCHEMA_VERSION, Venue};

use crate::Pseudonymiser;
use crate::batch::RawEvent;
use crate::config::IngestConfig;

/// What to do with one event of a batch.
pub(crate) enum Verdict {
    Accept(Append),
    Reject(EventError),
}

pub(crate) struct Enricher<'a> {
    pub venue: &'a Venue,
    pub pseudonymiser: &'a Pseudonymiser,
    pub config: &'a IngestConfig,
    pub received_at: DateTime<Utc>,
    pub received_text: String,
}

impl Enricher<'_> {
    pub(crate) fn judge(&self, raw: &RawEvent<'_>) -> Verdict {
        let text = match raw {
            RawEvent::Text(text) => *text,
            RawEvent::NotUtf8 => {
                return Verdict::Reject(EventError::new(
                    RejectCode::Parse,
                    "the event is not valid UTF-8",
                ));
            }
            RawEvent::TooLarge(bytes) => {
                return Verdict::Reject(EventError::new(
                    RejectCode::TooLarge,
                    format!(
                        "the event is {} bytes, at most {} allowed",
                        bytes.len(),
                        self.config.max_event_bytes
                    ),
                ));
            }
        };
        match parse_event(text).and_then(|event| self.check_and_enrich(event)) {
            Ok(append) => Verdict::Accept(append),
            Err(e) => Verdict::Reject(e),
        }
    }

    fn check_and_enrich(&self, event: Event) -> Result<Append, EventError> {
        let with_id = |code, message: String| EventError {
            code,
            message,
            event_id: Some(event.event_id().as_str().to_owned()),
        };
        let ahead_ms = (event.ts().with_timezone(&Utc) - self.received_at).num_milliseconds();
        if ahead_ms > self.config.max_clock_skew_ms {
            return Err(with_id(
                RejectCode::ClockSkew,
                format!(
                    "ts is {} s ahead of the received time {}; at most {} s allowed",
                    ahead_ms / 1000,
                    self.received_text,
                    self.config.max_clock_skew_ms / 1000
                ),
            ));
        }
        let badge = self.pseudonymiser.pseudonym(event.badge_id());
        let ts = format_ts(event.ts().with_timezone(&Utc));
        let value = match &event {
            Event::BadgeScan(scan) => {
                let Some(scanner) = self.venue.scanner(scan.scanner_id.as_str()) else {
                    return Err(with_id(
                        RejectCode::UnknownScanner,
                        format!(
                            "scanner {:?} is not in the venue file",
                            scan.scanner_id.as_str()
                        ),
                    ));
                };
                serde_json::to_vec(&ScanRecord {
                    v: SCHEMA_VERSION,
                    event_id: scan.event_id.as_str(),
                    ts: &ts,
                    received_at: &self.received_text,
                    badge: &badge,
                    scanner_id: &scanner.id,
                    zone_kind: scanner.zone_kind.as_str(),
                    zone_id: &scanner.zone_id,
                    pole_id: scanner.pole_id.as_deref(),
                    stand_id: scanner.stand_id.as_deref(),
                    room_id: scanner.room_id.as_deref(),
                    direction: scan.direction.as_str(),
                })
            }
            Event::Ticket(ticket) => serde_json::to_vec(&TicketRecord {
                v: SCHEMA_VERSION,
                event_id: ticket.event_id.as_str(),
                ts: &ts,
                received_at: &self.received_text,
                ticket_id: ticket.ticket_id.as_str(),
                badge: &badge,
                action: ticket.action.as_str(),
                ticket_type: ticket.ticket_type.as_str(),
                channel: ticket.channel.as_str(),
                price: &ticket.price.to_string(),
                currency: &ticket.currency,
            }),
        }
        .expect("records of strings always serialise");
        Ok(Append {
            topic: match event {
                Event::BadgeScan(_) => Topic::Scans,
                Event::Ticket(_) => Topic::Tickets,
            },
            key: badge.into_bytes(),
            value,
            dedup_id: Some(event.event_id().as_str().to_owned()),
        })
    }

    /// The rejected-stream record of a refused event, raw text included (cut
    /// to the per-event limit).
    pub(crate) fn rejected(&self, raw: &RawEvent<'_>, error: &EventError) -> Append {
        let raw_text = match raw {
            RawEvent::Text(text) => std::borrow::Cow::Borrowed(*text),
            RawEvent::NotUtf8 => std::borrow::Cow::Borrowed(""),
            RawEvent::TooLarge(bytes) => {
                String::from_utf8_lossy(&bytes[..bytes.len().min(self.config.max_event_bytes)])
            }
        };
        let record = RejectedRecord {
            v: SCHEMA_VERSION,
            received_at: &self.received_text,
            code: error.code.as_str(),
            message: error.message.as_str().into(),
            event_id: error.event_id.as_deref().map(|id| truncate(id, 128).into()),
            raw: raw_text,
        };
        Append {
            topic: Topic::Rejected,
            key: Vec::new(),
            value: serde_json::to_vec(&record).expect("records of strings always serialise"),
            dedup_id: None,
        }
    }
}
