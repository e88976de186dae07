//! The truth: `footfall_hourly` as footfall must compute it from what the
//! simulator sent, built incrementally while events are emitted.
//!
//! Definition (DESIGN.md): per venue-local hour and zone, `entries` is the
//! number of distinct valid events with direction `in` scanned in the zone,
//! and `visitors` the distinct badges among them. A pole's zone is its own
//! scanners and its stands'; the venue's zone is its gates. Events are placed
//! by their `ts` as sent (skewed clocks included). Retries count once and
//! malformed lines never, because they never reach [`DayTruth::entry`].
//!
//! Invariant: one badge's events of one day go through one visit
//! ([`DayTruth::end_visit`]), and a day's `ts` never leave its local date, so
//! counting distinct keys per visit gives distinct badges per (hour, zone)
//! without keeping any badge set.

use crate::hash::FastMap;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use footfall_schemas::Venue;
use std::io::{self, Write};

use crate::layout::ScannerZones;

/// The level of a zone in `footfall_hourly`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Venue,
    Pole,
    Stand,
    Room,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Venue => "venue",
            Self::Pole => "pole",
            Self::Stand => "stand",
            Self::Room => "room",
        }
    }
}

/// One row of `footfall_hourly`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthRow {
    pub local_day: NaiveDate,
    /// The start of the local wall-clock hour.
    pub local_hour: NaiveDateTime,
    pub level: Level,
    pub zone_id: String,
    pub entries: u64,
    pub visitors: u64,
}

/// (local hour since the local epoch, level, zone index in its level).
type Key = (i64, Level, u32);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cell {
    entries: u64,
    visitors: u64,
}

/// The truth of one segment, merged into [`Truth`] when the segment has
/// been sent in full.
#[derive(Debug, Default)]
pub(crate) struct DayTruth {
    cells: FastMap<Key, Cell>,
    /// Keys entered by the current visit, repeated as often as entered.
    visit: Vec<Key>,
}

impl DayTruth {
    /// A valid `in` scan at local hour `hour` by a scanner in `zones`.
    pub fn entry(&mut self, hour: i64, zones: ScannerZones) {
        let keys = [
            zones.gate.then_some((hour, Level::Venue, 0)),
            zones.pole.map(|p| (hour, Level::Pole, p)),
            zones.stand.map(|s| (hour, Level::Stand, s)),
            zones.room.map(|r| (hour, Level::Room, r)),
        ];
        for key in keys.into_iter().flatten() {
            self.cells.entry(key).or_default().entries += 1;
            self.visit.push(key);
        }
    }

    pub fn end_visit(&mut self) {
        self.visit.sort_unstable();
        self.visit.dedup();
        for key in self.visit.drain(..) {
            self.cells.entry(key).or_default().visitors += 1;
        }
    }
}

/// The expected `footfall_hourly` of everything sent so far.
#[derive(Clone, Debug)]
pub struct Truth {
    /// Zone ids by level: the venue id, then poles, stands and rooms.
    zone_ids: [Vec<String>; 4],
    cells: FastMap<Key, Cell>,
}

impl Truth {
    pub(crate) fn new(venue: &Venue) -> Self {
        Self {
            zone_ids: [
                vec![venue.id.clone()],
                venue.poles.iter().map(|p| p.id.clone()).collect(),
                venue.stands.iter().map(|s| s.id.clone()).collect(),
                venue.rooms.iter().map(|r| r.id.clone()).collect(),
            ],
            cells: FastMap::default(),
        }
    }

    pub(crate) fn merge(&mut self, day: DayTruth) {
        debug_assert!(day.visit.is_empty(), "every visit was closed");
        for (key, cell) in day.cells {
            // Days never share a local hour (see the module invariant), so
            // adding visitors here never counts a badge twice.
            let c = self.cells.entry(key).or_default();
            c.entries += cell.entries;
            c.visitors += cell.visitors;
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The rows, sorted like `ORDER BY local_day, local_hour, level, zone_id`.
    pub fn rows(&self) -> Vec<TruthRow> {
        let mut rows: Vec<TruthRow> = self
            .cells
            .iter()
            .map(|(&(hour, level, zone), cell)| {
                let local_hour = DateTime::from_timestamp(hour * 3600, 0)
                    .expect("hours come from simulated instants, within chrono's range")
                    .naive_utc();
                TruthRow {
                    local_day: local_hour.date(),
                    local_hour,
                    level,
                    zone_id: self.zone_ids[level as usize][zone as usize].clone(),
                    entries: cell.entries,
                    visitors: cell.visitors,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            (a.local_hour, a.level.as_str(), &a.zone_id).cmp(&(
                b.local_hour,
                b.level.as_str(),
                &b.zone_id,
            ))
        });
        rows
    }

    /// One JSON object per row, in [`Truth::rows`] order:
    /// `{"local_day":"2026-02-16","local_hour":"2026-02-16T10:00:00","level":"pole","zone_id":"products","entries":123,"visitors":99}`.
    pub fn write_ndjson(&self, mut w: impl Write) -> io::Result<()> {
        for row in self.rows() {
            let zone = serde_json::to_string(&row.zone_id).map_err(io::Error::other)?;
            writeln!(
                w,
                r#"{{"local_day":"{}","local_hour":"{}","level":"{}","zone_id":{zone},"entries":{},"visitors":{}}}"#,
                row.local_day.format("%Y-%m-%d"),
                row.local_hour.format("%Y-%m-%dT%H:%M:%S"),
                row.level.as_str(),
                row.entries,
                row.visitors
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitors_are_distinct_per_visit_and_entries_are_not() {
        let stand = ScannerZones {
            pole: Some(0),
            stand: Some(1),
            ..Default::default()
        };
        let pole = ScannerZones {
            pole: Some(0),
            ..Default::default()
        };
        let mut day = DayTruth::default();
        let h = 491_000;
        day.entry(h, pole);
        day.entry(h, stand);
        day.entry(h, stand);
        day.end_visit();
        day.entry(h, stand);
        day.end_visit();
        let venue = footfall_schemas::venue::reference();
        let mut truth = Truth::new(&venue);
        truth.merge(day);
        let rows = truth.rows();
        let get = |level: Level| {
            rows.iter()
                .find(|r| r.level == level)
                .map(|r| (r.entries, r.visitors))
        };
        assert_eq!(get(Level::Pole), Some((4, 2)));
        assert_eq!(get(Level::Stand), Some((3, 2)));
        let mut out = Vec::new();
        truth.write_ndjson(&mut out).expect("writing to memory");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with(r#"{"local_day":"2026-01-05","local_hour":"2026-01-05T08:00:00","level":"pole","zone_id":"products","entries":4,"visitors":2}"#), "{text}");
    }
}
