//! The venue as SQL tables: poles, stands, rooms, sessions, gates, scanners,
//! opening hours and the venue itself. Built once from the venue file.

use arrow::array::{ArrayRef, Date32Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use std::sync::Arc;

use footfall_schemas::Venue;

use crate::materialise::Local;

fn strings<'a>(values: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn optional<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn counts(values: impl IntoIterator<Item = u32>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<UInt32Array>())
}

fn instants(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(
        TimestampMillisecondArray::from(values.into_iter().collect::<Vec<i64>>())
            .with_timezone("UTC"),
    )
}

fn table(fields: Vec<(&str, DataType, bool)>, columns: Vec<ArrayRef>) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(name, ty, nullable)| Field::new(name, ty, nullable))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    MemTable::try_new(schema, vec![vec![batch]])
}

const UTF8: DataType = DataType::Utf8;

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Every dimension table, by name.
pub fn tables(venue: &Venue) -> Result<Vec<(&'static str, MemTable)>> {
    let v = venue;
    Ok(vec![
        (
            "venue",
            table(
                vec![
                    ("venue_id", UTF8, false),
                    ("name", UTF8, false),
                    ("time_zone", UTF8, false),
                    ("area_m2", DataType::UInt32, false),
                    ("capacity", DataType::UInt32, false),
                ],
                vec![
                    strings([v.id.as_str()]),
                    strings([v.name.as_str()]),
                    strings([v.time_zone.name()]),
                    counts([v.area_m2]),
                    counts([v.capacity]),
                ],
            )?,
        ),
        (
            "opening_hours",
            table(
                vec![
                    ("local_day", DataType::Date32, false),
                    ("opens_at", utc(), false),
                    ("closes_at", utc(), false),
                ],
                vec![
                    Arc::new(Date32Array::from(
                        v.days
                            .iter()
                            .map(|d| Local::of(v.opening(d).0, v.time_zone).day)
                            .collect::<Vec<i32>>(),
                    )),
                    instants(v.days.iter().map(|d| v.opening(d).0.timestamp_millis())),
                    instants(v.days.iter().map(|d| v.opening(d).1.timestamp_millis())),
                ],
            )?,
        ),
        (
            "poles",
            table(
                vec![
                    ("pole_id", UTF8, false),
                    ("name", UTF8, false),
                    ("capacity", DataType::UInt32, false),
                ],
                vec![
                    strings(v.poles.iter().map(|p| p.id.as_str())),
                    strings(v.poles.iter().map(|p| p.name.as_str())),
                    counts(v.poles.iter().map(|p| p.capacity)),
                ],
            )?,
        ),
        (
            "stands",
            table(
                vec![
                    ("stand_id", UTF8, false),
                    ("pole_id", UTF8, false),
                    ("exhibitor", UTF8, false),
                    ("exhibitor_name", UTF8, false),
                ],
                vec![
                    strings(v.stands.iter().map(|s| s.id.as_str())),
                    strings(v.stands.iter().map(|s| s.pole_id.as_str())),
                    strings(v.stands.iter().map(|s| s.exhibitor_id.as_str())),
                    strings(v.stands.iter().map(|s| s.exhibitor_name.as_str())),
                ],
            )?,
        ),
        (
            "rooms",
            table(
                vec![
                    ("room_id", UTF8, false),
                    ("name", UTF8, false),
                    ("capacity", DataType::UInt32, false),
                ],
                vec![
                    strings(v.rooms.iter().map(|r| r.id.as_str())),
                    strings(v.rooms.iter().map(|r| r.name.as_str())),
                    counts(v.rooms.iter().map(|r| r.capacity)),
                ],
            )?,
        ),
        (
            "sessions",
            table(
                vec![
                    ("session_id", UTF8, false),
                    ("room_id", UTF8, false),
                    ("title", UTF8, false),
                    ("kind", UTF8, false),
                    ("starts_at", utc(), false),
                    ("ends_at", utc(), false),
                ],
                vec![
                    strings(v.sessions.iter().map(|s| s.id.as_str())),
                    strings(v.sessions.iter().map(|s| s.room_id.as_str())),
                    strings(v.sessions.iter().map(|s| s.title.as_str())),
                    strings(v.sessions.iter().map(|s| s.kind.as_str())),
                    instants(v.sessions.iter().map(|s| s.starts_at.timestamp_millis())),
                    instants(v.sessions.iter().map(|s| s.ends_at.timestamp_millis())),
                ],
            )?,
        ),
        (
            "gates",
            table(
                vec![("gate_id", UTF8, false), ("name", UTF8, false)],
                vec![
                    strings(v.gates.iter().map(|g| g.id.as_str())),
                    strings(v.gates.iter().map(|g| g.name.as_str())),
                ],
            )?,
        ),
        (
            "scanners",
            table(
                vec![
                    ("scanner_id", UTF8, false),
                    ("zone_kind", UTF8, false),
                    ("zone_id", UTF8, false),
                    ("pole_id", UTF8, true),
                    ("stand_id", UTF8, true),
                    ("room_id", UTF8, true),
                ],
                vec![
                    strings(v.scanners.iter().map(|s| s.id.as_str())),
                    strings(v.scanners.iter().map(|s| s.zone_kind.as_str())),
                    strings(v.scanners.iter().map(|s| s.zone_id.as_str())),
                    optional(v.scanners.iter().map(|s| s.pole_id.as_deref())),
                    optional(v.scanners.iter().map(|s| s.stand_id.as_deref())),
                    optional(v.scanners.iter().map(|s| s.room_id.as_deref())),
                ],
            )?,
        ),
    ])
}
