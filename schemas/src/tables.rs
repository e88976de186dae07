//! Arrow schemas of the event tables, shared by the materialiser (which
//! writes them to Parquet) and anything that reads the files back.
//!
//! Times are UTC instants (`ts`, `received_at`); `local_day` and `local_hour`
//! are the venue's wall clock, computed from the IANA database.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, LazyLock};

/// Precision and scale of ticket prices.
pub const PRICE_PRECISION: u8 = 12;
pub const PRICE_SCALE: i8 = 2;

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn local_hour() -> DataType {
    DataType::Timestamp(TimeUnit::Second, None)
}

fn s(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn log_position() -> [Field; 2] {
    [
        Field::new("log_partition", DataType::Int32, false),
        Field::new("log_offset", DataType::Int64, false),
    ]
}

pub static SCANS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        s("event_id", false),
        Field::new("ts", utc(), false),
        Field::new("received_at", utc(), false),
        Field::new("local_day", DataType::Date32, false),
        Field::new("local_hour", local_hour(), false),
        s("badge", false),
        s("scanner_id", false),
        s("zone_kind", false),
        s("zone_id", false),
        s("pole_id", true),
        s("stand_id", true),
        s("room_id", true),
        s("direction", false),
    ];
    fields.extend(log_position());
    Arc::new(Schema::new(fields))
});

pub static TICKETS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        s("event_id", false),
        Field::new("ts", utc(), false),
        Field::new("received_at", utc(), false),
        Field::new("local_day", DataType::Date32, false),
        s("ticket_id", false),
        s("badge", false),
        s("action", false),
        s("ticket_type", false),
        s("channel", false),
        Field::new(
            "price",
            DataType::Decimal128(PRICE_PRECISION, PRICE_SCALE),
            false,
        ),
        s("currency", false),
    ];
    fields.extend(log_position());
    Arc::new(Schema::new(fields))
});

pub static REJECTED: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("received_at", utc(), false),
        Field::new("local_day", DataType::Date32, false),
        s("code", false),
        s("message", false),
        s("event_id", true),
        s("raw", false),
    ];
    fields.extend(log_position());
    Arc::new(Schema::new(fields))
});
