//! Wire format v1: the events scanners and ticketing send (see
//! `schemas/json/*.schema.json`, the published contract).
//!
//! [`parse_event`] turns one raw JSON text into a typed [`Event`] or a
//! [`EventError`] whose [`RejectCode`] tells the sender what to fix. Fields are
//! read by hand rather than through serde's derive so that each failure names
//! its field and unknown fields get their own code.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};
use std::fmt;

use crate::ids::{BadgeId, EventId, ScannerId, TicketId};

/// Why an event was refused. The string forms are part of the HTTP contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// Not JSON, or not a JSON object.
    Parse,
    /// JSON, but a field is missing, of the wrong type or out of its range.
    Schema,
    /// A field that the event type does not have (often a typo).
    UnknownField,
    /// The scanner is not in the venue file.
    UnknownScanner,
    /// `ts` is more than the allowed skew ahead of the time it was received.
    ClockSkew,
    /// The event is longer than the per-event limit.
    TooLarge,
    /// A log record that is not a valid enriched event (written by someone else).
    BadRecord,
}

impl RejectCode {
    pub const ALL: [RejectCode; 7] = [
        Self::Parse,
        Self::Schema,
        Self::UnknownField,
        Self::UnknownScanner,
        Self::ClockSkew,
        Self::TooLarge,
        Self::BadRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Schema => "schema",
            Self::UnknownField => "unknown_field",
            Self::UnknownScanner => "unknown_scanner",
            Self::ClockSkew => "clock_skew",
            Self::TooLarge => "too_large",
            Self::BadRecord => "bad_record",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event: the code and a message for the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventError {
    pub code: RejectCode,
    pub message: String,
    /// The event id when it could be read, to help the sender match answers.
    pub event_id: Option<String>,
}

impl EventError {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            event_id: None,
        }
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for EventError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

word_enum!(
    /// What happened to a ticket.
    TicketAction { Issued => "issued", Cancelled => "cancelled" }
);
word_enum!(
    /// Who the ticket is for.
    TicketType {
        Visitor => "visitor",
        Exhibitor => "exhibitor",
        Press => "press",
        Vip => "vip",
        Staff => "staff",
    }
);
word_enum!(
    /// Where the ticket was issued.
    Channel { Online => "online", Onsite => "onsite", Invitation => "invitation" }
);

/// A price as an exact number of hundredths ("20.00" → 2000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    pub cents: i64,
}

impl Price {
    /// Accepts `^[0-9]{1,9}(\.[0-9]{1,2})?$`.
    pub fn parse(text: &str) -> Option<Self> {
        let (units, frac) = match text.split_once('.') {
            Some((u, f)) => (u, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(units, 9) {
            return None;
        }
        let units: i64 = units.parse().ok()?;
        let cents = match frac {
            None => 0,
            Some(f) if digits(f, 2) => {
                let v: i64 = f.parse().ok()?;
                if f.len() == 1 { v * 10 } else { v }
            }
            Some(_) => return None,
        };
        Some(Self {
            cents: units * 100 + cents,
        })
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.cents / 100, self.cents % 100)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BadgeScan {
    pub event_id: EventId,
    pub ts: DateTime<FixedOffset>,
    pub badge_id: BadgeId,
    pub scanner_id: ScannerId,
    pub direction: Direction,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    pub event_id: EventId,
    pub ts: DateTime<FixedOffset>,
    pub ticket_id: TicketId,
    pub badge_id: BadgeId,
    pub action: TicketAction,
    pub ticket_type: TicketType,
    pub channel: Channel,
    pub price: Price,
    pub currency: String,
}

/// One valid v1 event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    BadgeScan(BadgeScan),
    Ticket(Ticket),
}

impl Event {
    pub fn event_id(&self) -> &EventId {
        match self {
            Self::BadgeScan(s) => &s.event_id,
            Self::Ticket(t) => &t.event_id,
        }
    }

    pub fn ts(&self) -> DateTime<FixedOffset> {
        match self {
            Self::BadgeScan(s) => s.ts,
            Self::Ticket(t) => t.ts,
        }
    }

    pub fn badge_id(&self) -> &BadgeId {
        match self {
            Self::BadgeScan(s) => &s.badge_id,
            Self::Ticket(t) => &t.badge_id,
        }
    }
}

/// The fields of each type; anything else is `unknown_field`.
pub const BADGE_SCAN_FIELDS: &[&str] = &[
    "type",
    "event_id",
    "ts",
    "badge_id",
    "scanner_id",
    "direction",
];
pub const TICKET_FIELDS: &[&str] = &[
    "type",
    "event_id",
    "ts",
    "ticket_id",
    "badge_id",
    "action",
    "ticket_type",
    "channel",
    "price",
    "currency",
];

/// Parses one event from its JSON text.
///
/// Fails with `parse` when the text is not a JSON object, `unknown_field`
/// when it has a field its type lacks, and `schema` for a missing, mistyped or
/// invalid field. Checks against the venue and the clock come later.
pub fn parse_event(text: &str) -> Result<Event, EventError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| EventError::new(RejectCode::Parse, format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(EventError::new(
            RejectCode::Parse,
            "an event must be a JSON object",
        ));
    };
    let event_id = obj
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    parse_object(&obj).map_err(|mut e| {
        e.event_id = event_id;
        e
    })
}

fn parse_object(obj: &Map<String, Value>) -> Result<Event, EventError> {
    let fields = Fields(obj);
    let kind = fields.string("type")?;
    match kind {
        "badge_scan" => {
            fields.only(BADGE_SCAN_FIELDS, kind)?;
            Ok(Event::BadgeScan(BadgeScan {
                event_id: fields.parsed("event_id", EventId::parse)?,
                ts: fields.timestamp("ts")?,
                badge_id: fields.parsed("badge_id", BadgeId::parse)?,
                scanner_id: fields.parsed("scanner_id", ScannerId::parse)?,
                direction: match fields.optional_string("direction")? {
                    None | Some("in") => Direction::In,
                    Some("out") => Direction::Out,
                    Some(other) => {
                        return Err(schema(format!(
                            "direction must be \"in\" or \"out\", got {other:?}"
                        )));
                    }
                },
            }))
        }
        "ticket" => {
            fields.only(TICKET_FIELDS, kind)?;
            Ok(Event::Ticket(Ticket {
                event_id: fields.parsed("event_id", EventId::parse)?,
                ts: fields.timestamp("ts")?,
                ticket_id: fields.parsed("ticket_id", TicketId::parse)?,
                badge_id: fields.parsed("badge_id", BadgeId::parse)?,
                action: fields.word(
                    "action",
                    TicketAction::parse,
                    TicketAction::ALL.iter().map(|w| w.as_str()),
                )?,
                ticket_type: fields.word(
                    "ticket_type",
                    TicketType::parse,
                    TicketType::ALL.iter().map(|w| w.as_str()),
                )?,
                channel: fields.word(
                    "channel",
                    Channel::parse,
                    Channel::ALL.iter().map(|w| w.as_str()),
                )?,
                price: fields.parsed("price", |s| {
                    Price::parse(s)
                        .ok_or_else(|| "must be a decimal string such as \"20.00\"".to_owned())
                })?,
                currency: fields.parsed("currency", |s| {
                    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
                        Ok(s.to_owned())
                    } else {
                        Err("must be a three-letter ISO 4217 code such as \"MAD\"".to_owned())
                    }
                })?,
            }))
        }
        other => Err(schema(format!(
            "type must be \"badge_scan\" or \"ticket\", got {other:?}"
        ))),
    }
}

fn schema(message: String) -> EventError {
    EventError::new(RejectCode::Schema, message)
}

struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn only(&self, allowed: &[&str], kind: &str) -> Result<(), EventError> {
        // Sorted so the answer is the same whatever the key order of the input.
        let mut unknown: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort_unstable();
        let shown: Vec<String> = unknown
            .iter()
            .take(5)
            .map(|k| format!("{:?}", truncate(k, 64)))
            .collect();
        Err(EventError::new(
            RejectCode::UnknownField,
            format!(
                "{kind} has no field {}; its fields are {}",
                shown.join(", "),
                allowed.join(", ")
            ),
        ))
    }

    fn optional_string(&self, name: &str) -> Result<Option<&'a str>, EventError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(schema(format!(
                "{name} must be a string, got {}",
                json_kind(other)
            ))),
        }
    }

    fn string(&self, name: &str) -> Result<&'a str, EventError> {
        self.optional_string(name)?
            .ok_or_else(|| schema(format!("{name} is required")))
    }

    fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, EventError> {
        let text = self.string(name)?;
        parse(text).map_err(|why| schema(format!("{name} {why}")))
    }

    fn word<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        allowed: impl Iterator<Item = &'static str>,
    ) -> Result<T, EventError> {
        let text = self.string(name)?;
        parse(text).ok_or_else(|| {
            let allowed: Vec<_> = allowed.collect();
            schema(format!(
                "{name} must be one of {}, got {:?}",
                allowed.join(", "),
                truncate(text, 64)
            ))
        })
    }

    fn timestamp(&self, name: &str) -> Result<DateTime<FixedOffset>, EventError> {
        self.parsed(name, parse_timestamp)
    }
}

/// RFC 3339 with an explicit offset (`Z` or `±hh:mm`), as the JSON Schema's
/// pattern says; years 2000 to 2099 so a zeroed clock is caught here.
pub fn parse_timestamp(text: &str) -> Result<DateTime<FixedOffset>, String> {
    if !timestamp_shape(text.as_bytes()) {
        return Err(format!(
            "must be an RFC 3339 time with an offset such as \"2026-02-16T10:03:12.120Z\", got {:?}",
            truncate(text, 64)
        ));
    }
    let ts =
        DateTime::parse_from_rfc3339(text).map_err(|e| format!("is not a valid time ({e})"))?;
    // chrono takes second 60 of any minute as a leap second; RFC 3339 only
    // of 23:59 UTC.
    if chrono::Timelike::nanosecond(&ts) >= 1_000_000_000 {
        let utc = ts.naive_utc();
        if (chrono::Timelike::hour(&utc), chrono::Timelike::minute(&utc)) != (23, 59) {
            return Err("has second 60 outside a leap second (23:59:60 UTC)".into());
        }
    }
    if !(2000..=2099).contains(&chrono::Datelike::year(&ts)) {
        return Err("is outside the years 2000 to 2099".into());
    }
    Ok(ts)
}

/// `YYYY-MM-DDTHH:MM:SS(.f{1,9})?(Z|±HH:MM)`, byte by byte.
fn timestamp_shape(b: &[u8]) -> bool {
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return false;
        }
    }
    match &b[i..] {
        [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> RejectCode {
        parse_event(text).unwrap_err().code
    }

    #[test]
    fn parses_the_design_examples() {
        let scan = parse_event(r#"{"type":"badge_scan","event_id":"g1-000123","ts":"2026-02-16T10:03:12.120Z","badge_id":"V-004213","scanner_id":"stand-P017","direction":"in"}"#).unwrap();
        assert_eq!(scan.event_id().as_str(), "g1-000123");
        let Event::Ticket(t) = parse_event(r#"{"type":"ticket","event_id":"t-88","ts":"2026-02-14T18:00:00+01:00","ticket_id":"T-88","badge_id":"V-004213","action":"issued","ticket_type":"visitor","channel":"online","price":"20.00","currency":"MAD"}"#).unwrap() else {
            panic!("a ticket")
        };
        assert_eq!(t.price.cents, 2000);
        assert_eq!(t.ts.offset().local_minus_utc(), 3600);
    }

    #[test]
    fn direction_defaults_to_in() {
        let Event::BadgeScan(s) = parse_event(r#"{"type":"badge_scan","event_id":"a","ts":"2026-02-16T10:03:12Z","badge_id":"b","scanner_id":"s"}"#).unwrap() else {
            panic!("a scan")
        };
        assert_eq!(s.direction, Direction::In);
    }

    #[test]
    fn codes() {
        assert_eq!(code("{"), RejectCode::Parse);
        assert_eq!(code("[1]"), RejectCode::Parse);
        assert_eq!(code(r#"{"type":"badge_scan"}"#), RejectCode::Schema);
        assert_eq!(
            code(
                r#"{"type":"badge_scan","event_id":"a","ts":"2026-02-16T10:03:12Z","badge_id":"b","scanner_id":"s","colour":1}"#
            ),
            RejectCode::UnknownField
        );
        assert_eq!(
            code(
                r#"{"type":"badge_scan","event_id":"a","ts":"2026-02-16 10:03:12Z","badge_id":"b","scanner_id":"s"}"#
            ),
            RejectCode::Schema
        );
        assert_eq!(
            code(
                r#"{"type":"badge_scan","event_id":"a","ts":"2026-02-16T10:03:12","badge_id":"b","scanner_id":"s"}"#
            ),
            RejectCode::Schema
        );
        assert_eq!(code(r#"{"type":"nope"}"#), RejectCode::Schema);
    }

    #[test]
    fn prices() {
        assert_eq!(Price::parse("20").unwrap().cents, 2000);
        assert_eq!(Price::parse("0.5").unwrap().cents, 50);
        assert_eq!(Price::parse("1.05").unwrap().to_string(), "1.05");
        for bad in ["", ".5", "1.", "1.005", "-1", "1e3", "1234567890"] {
            assert!(Price::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
    }
}
