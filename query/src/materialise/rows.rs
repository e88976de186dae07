//! Row builders: log records into Arrow columns, one builder set per table.
//!
//! Each row gets its venue-local day and hour from the IANA time zone, so an
//! hour is the venue's wall-clock hour even on the day the clocks change.

use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder, TimestampSecondBuilder,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use std::sync::Arc;

use footfall_schemas::events::Price;
use footfall_schemas::record::{RejectedRecord, ScanRecord, TicketRecord};
use footfall_schemas::tables;

/// Days from 1970-01-01 to 0001-01-01 as chrono counts them.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The venue-local calendar of an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    /// Days since 1970-01-01 (Arrow Date32).
    pub day: i32,
    /// The local wall-clock hour start, seconds since 1970-01-01 as if UTC
    /// (Arrow Timestamp without time zone).
    pub hour: i64,
}

impl Local {
    pub fn of(ts: DateTime<Utc>, tz: Tz) -> Self {
        let local = ts.with_timezone(&tz).naive_local();
        let day = chrono::Datelike::num_days_from_ce(&local.date()) - UNIX_EPOCH_DAYS_FROM_CE;
        let hour = local
            .date()
            .and_hms_opt(local.hour(), 0, 0)
            .expect("an hour of a valid time is valid");
        Self {
            day,
            hour: hour.and_utc().timestamp(),
        }
    }

    pub fn date(self) -> NaiveDate {
        date_of_day(self.day).expect("days come from a valid date")
    }
}

/// The date of an Arrow Date32 value.
pub fn date_of_day(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(day.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// Parses the RFC 3339 times that records carry.
pub fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn utc_ms() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone("UTC")
}

pub struct ScanRows {
    event_id: StringBuilder,
    ts: TimestampMillisecondBuilder,
    received_at: TimestampMillisecondBuilder,
    local_day: Date32Builder,
    local_hour: TimestampSecondBuilder,
    badge: StringBuilder,
    scanner_id: StringBuilder,
    zone_kind: StringBuilder,
    zone_id: StringBuilder,
    pole_id: StringBuilder,
    stand_id: StringBuilder,
    room_id: StringBuilder,
    direction: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    len: usize,
}

impl ScanRows {
    pub fn new() -> Self {
        Self {
            event_id: StringBuilder::new(),
            ts: utc_ms(),
            received_at: utc_ms(),
            local_day: Date32Builder::new(),
            local_hour: TimestampSecondBuilder::new(),
            badge: StringBuilder::new(),
            scanner_id: StringBuilder::new(),
            zone_kind: StringBuilder::new(),
            zone_id: StringBuilder::new(),
            pole_id: StringBuilder::new(),
            stand_id: StringBuilder::new(),
            room_id: StringBuilder::new(),
            direction: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(
        &mut self,
        r: &ScanRecord<'_>,
        ts: DateTime<Utc>,
        received: DateTime<Utc>,
        local: Local,
        pos: (i32, i64),
    ) {
        self.event_id.append_value(r.event_id);
        self.ts.append_value(ts.timestamp_millis());
        self.received_at.append_value(received.timestamp_millis());
        self.local_day.append_value(local.day);
        self.local_hour.append_value(local.hour);
        self.badge.append_value(r.badge);
        self.scanner_id.append_value(r.scanner_id);
        self.zone_kind.append_value(r.zone_kind);
        self.zone_id.append_value(r.zone_id);
        self.pole_id.append_option(r.pole_id);
        self.stand_id.append_option(r.stand_id);
        self.room_id.append_option(r.room_id);
        self.direction.append_value(r.direction);
        self.partition.append_value(pos.0);
        self.offset.append_value(pos.1);
        self.len += 1;
    }

    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.local_day.finish()),
            Arc::new(self.local_hour.finish()),
            Arc::new(self.badge.finish()),
            Arc::new(self.scanner_id.finish()),
            Arc::new(self.zone_kind.finish()),
            Arc::new(self.zone_id.finish()),
            Arc::new(self.pole_id.finish()),
            Arc::new(self.stand_id.finish()),
            Arc::new(self.room_id.finish()),
            Arc::new(self.direction.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(tables::SCANS.clone(), columns)
            .expect("builders follow the scans schema")
    }
}

pub struct TicketRows {
    event_id: StringBuilder,
    ts: TimestampMillisecondBuilder,
    received_at: TimestampMillisecondBuilder,
    local_day: Date32Builder,
    ticket_id: StringBuilder,
    badge: StringBuilder,
    action: StringBuilder,
    ticket_type: StringBuilder,
    channel: StringBuilder,
    price: Decimal128Builder,
    currency: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    len: usize,
}

impl TicketRows {
    pub fn new() -> Self {
        Self {
            event_id: StringBuilder::new(),
            ts: utc_ms(),
            received_at: utc_ms(),
            local_day: Date32Builder::new(),
            ticket_id: StringBuilder::new(),
            badge: StringBuilder::new(),
            action: StringBuilder::new(),
            ticket_type: StringBuilder::new(),
            channel: StringBuilder::new(),
            price: Decimal128Builder::new(),
            currency: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(
        &mut self,
        r: &TicketRecord<'_>,
        price: Price,
        ts: DateTime<Utc>,
        received: DateTime<Utc>,
        local: Local,
        pos: (i32, i64),
    ) {
        self.event_id.append_value(r.event_id);
        self.ts.append_value(ts.timestamp_millis());
        self.received_at.append_value(received.timestamp_millis());
        self.local_day.append_value(local.day);
        self.ticket_id.append_value(r.ticket_id);
        self.badge.append_value(r.badge);
        self.action.append_value(r.action);
        self.ticket_type.append_value(r.ticket_type);
        self.channel.append_value(r.channel);
        self.price.append_value(i128::from(price.cents));
        self.currency.append_value(r.currency);
        self.partition.append_value(pos.0);
        self.offset.append_value(pos.1);
        self.len += 1;
    }

    pub fn finish(&mut self) -> RecordBatch {
        let price = self
            .price
            .finish()
            .with_precision_and_scale(tables::PRICE_PRECISION, tables::PRICE_SCALE)
            .expect("the price precision and scale are valid");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.local_day.finish()),
            Arc::new(self.ticket_id.finish()),
            Arc::new(self.badge.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.ticket_type.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(price),
            Arc::new(self.currency.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(tables::TICKETS.clone(), columns)
            .expect("builders follow the tickets schema")
    }
}

pub struct RejectedRows {
    received_at: TimestampMillisecondBuilder,
    local_day: Date32Builder,
    code: StringBuilder,
    message: StringBuilder,
    event_id: StringBuilder,
    raw: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    len: usize,
}

impl RejectedRows {
    pub fn new() -> Self {
        Self {
            received_at: utc_ms(),
            local_day: Date32Builder::new(),
            code: StringBuilder::new(),
            message: StringBuilder::new(),
            event_id: StringBuilder::new(),
            raw: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(
        &mut self,
        r: &RejectedRecord<'_>,
        received: DateTime<Utc>,
        local: Local,
        pos: (i32, i64),
    ) {
        self.received_at.append_value(received.timestamp_millis());
        self.local_day.append_value(local.day);
        self.code.append_value(r.code);
        self.message.append_value(&r.message);
        self.event_id.append_option(r.event_id.as_deref());
        self.raw.append_value(&r.raw);
        self.partition.append_value(pos.0);
        self.offset.append_value(pos.1);
        self.len += 1;
    }

    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.received_at.finish()),
            Arc::new(self.local_day.finish()),
            Arc::new(self.code.finish()),
            Arc::new(self.message.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(tables::REJECTED.clone(), columns)
            .expect("builders follow the rejected schema")
    }
}

/// A batch of scans from (event id, time, zone kind, direction), with
/// one badge and zone, for tests.
#[cfg(test)]
pub fn test_scans(rows: &[(&str, &str, &str, &str)]) -> RecordBatch {
    let tz = chrono_tz::Africa::Casablanca;
    let mut builder = ScanRows::new();
    for (i, &(event_id, ts, zone_kind, direction)) in rows.iter().enumerate() {
        let record = ScanRecord {
            v: 1,
            event_id,
            ts,
            received_at: ts,
            badge: "ab",
            scanner_id: "s",
            zone_kind,
            zone_id: "z",
            pole_id: None,
            stand_id: None,
            room_id: None,
            direction,
        };
        let ts = parse_ts(ts).expect("a test time is RFC 3339");
        builder.push(&record, ts, ts, Local::of(ts, tz), (0, i as i64));
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hours_across_the_2026_casablanca_switch() {
        let tz: Tz = "Africa/Casablanca".parse().unwrap();
        let at = |s: &str| Local::of(parse_ts(s).unwrap(), tz);
        let hour = |l: Local| {
            DateTime::from_timestamp(l.hour, 0)
                .unwrap()
                .naive_utc()
                .to_string()
        };
        // Before 03:00 local (+01:00), then UTC+0.
        assert_eq!(hour(at("2026-02-15T00:30:00Z")), "2026-02-15 01:00:00");
        assert_eq!(hour(at("2026-02-15T01:30:00Z")), "2026-02-15 02:00:00");
        assert_eq!(hour(at("2026-02-15T02:30:00Z")), "2026-02-15 02:00:00");
        assert_eq!(hour(at("2026-02-15T10:15:00Z")), "2026-02-15 10:00:00");
        // The day before the switch, 23:30Z is already the 15th locally.
        let l = at("2026-02-14T23:30:00Z");
        assert_eq!(l.date().to_string(), "2026-02-15");
        assert_eq!(hour(l), "2026-02-15 00:00:00");
    }
}
