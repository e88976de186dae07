//! The live state of the floor: what `/metrics` exports and `/v1/live`
//! streams, as one immutable value rebuilt from the current snapshot.
//!
//! Occupancy follows the `occupancy` view's rule, at the live clock instead
//! of every 15 minutes: for the venue (its gates) and a room, the `in` scans
//! minus the `out` scans of the local day so far, never below zero; for a
//! stand, the badges whose latest scan of the day is an `in` there, within
//! the 2 h dwell cap (the `stand_visits` rule); for a pole, the sum of its
//! stands (pole entrances count entries, not exits). Zero outside opening
//! hours: everyone still inside is counted out at closing.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use footfall_schemas::Venue;
use footfall_schemas::venue::ZoneKind;

/// Levels of zones, as in `footfall_hourly.level`.
pub const LEVELS: [&str; 4] = ["venue", "pole", "stand", "room"];

/// The floor at one moment, as this query instance sees it (the log
/// partitions it owns; see `docs/metrics.md` for split deployments).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LiveState {
    pub venue_id: String,
    pub venue_name: String,
    /// The live clock: the wall clock during a fair, or the newest scan's
    /// time when replaying a past fair (see [`live_clock`]).
    #[serde(serialize_with = "rfc3339_opt")]
    pub clock: Option<DateTime<Utc>>,
    /// `wall` or `events`: where the clock came from.
    pub clock_source: &'static str,
    /// The venue's local day at the clock.
    pub local_day: Option<NaiveDate>,
    /// Whether the venue is open at the clock.
    pub open: bool,
    /// Log partitions of the scans topic this instance reads.
    pub partitions: Vec<i32>,
    /// The venue, its poles and its rooms.
    pub zones: Vec<ZoneState>,
    /// Every stand (hundreds): in `/metrics` only behind the flag, never
    /// streamed whole.
    #[serde(skip)]
    pub stands: Vec<ZoneState>,
    /// The stands with the most entries in the last 15 minutes.
    pub busiest_stands: Vec<ZoneState>,
    /// Sessions running at the clock, with their attendance so far.
    pub sessions: Vec<SessionState>,
    /// Every scanner of the venue with its last scan.
    #[serde(skip)]
    pub scanners: Vec<ScannerState>,
    /// Scanners silent for [`SILENT_AFTER_S`] or more while the venue is open.
    pub silent_scanners: Vec<ScannerState>,
    /// Tickets by action (`issued`, `cancelled`) and ticket type.
    pub tickets: Vec<TicketCount>,
    /// Rejected events kept in the `rejected` table, by code.
    pub rejected: Vec<CodeCount>,
    /// Log records not yet materialised, all owned partitions together.
    pub lag_events: i64,
    /// What needs attention now, by the same thresholds as the alert rules.
    pub alerts: Vec<Alert>,
    /// When this state was computed (wall clock).
    #[serde(serialize_with = "rfc3339_opt")]
    pub computed_at: Option<DateTime<Utc>>,
}

/// One zone's numbers.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ZoneState {
    /// `venue`, `pole`, `stand` or `room`.
    pub level: &'static str,
    pub id: String,
    pub name: String,
    /// People allowed at once; stands have none.
    pub capacity: Option<u32>,
    /// People inside now, by the occupancy rule (see the module doc).
    pub inside: u64,
    /// `in` scans of the local day so far.
    pub entries_today: u64,
    /// `in` scans in the hour before the clock.
    pub entries_last_hour: u64,
    /// `in` scans in the 15 minutes before the clock.
    pub entries_last_15m: u64,
    /// `in` scans ever (equals the sum of `footfall_hourly.entries`).
    pub entries_total: u64,
}

impl ZoneState {
    /// `inside / capacity`, when the zone has a capacity.
    pub fn fill(&self) -> Option<f64> {
        self.capacity
            .filter(|c| *c > 0)
            .map(|c| self.inside as f64 / f64::from(c))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionState {
    pub id: String,
    pub room_id: String,
    pub title: String,
    pub kind: String,
    #[serde(serialize_with = "rfc3339")]
    pub starts_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub ends_at: DateTime<Utc>,
    /// Distinct badges scanned in at the room from 15 minutes before the
    /// start (the `session_attendance` rule) up to the clock.
    pub attendees: u64,
    pub capacity: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScannerState {
    pub id: String,
    pub zone_kind: &'static str,
    pub zone_id: String,
    /// Its newest scan's time (scanner clock); none if never seen.
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_seen: Option<DateTime<Utc>>,
    /// Seconds from `last_seen` (or today's opening) to the clock.
    pub silent_s: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TicketCount {
    pub action: String,
    pub ticket_type: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CodeCount {
    pub code: String,
    pub count: u64,
}

/// Something that needs attention; the page translates `kind`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Alert {
    /// `zone_near_capacity`, `scanner_silent` or `materialiser_lag`.
    pub kind: &'static str,
    /// The zone or scanner concerned.
    pub subject: String,
    /// The measured value (fill ratio, silent seconds, lag events).
    pub value: f64,
}

/// A zone at this share of its capacity or more is an alert (the same
/// threshold as `FootfallZoneNearCapacity`).
pub const NEAR_CAPACITY: f64 = 0.9;
/// A scanner silent this long while the venue is open is an alert (as
/// `FootfallScannerSilent`).
pub const SILENT_AFTER_S: i64 = 600;
/// More unread log records than this is an alert (as
/// `FootfallMaterialiserLagging`).
pub const LAG_EVENTS_ALERT: i64 = 50_000;

/// The live clock. During a fair the wall clock is "now"; when the newest
/// scan is more than a day away from the wall clock the log holds a past or
/// simulated fair, and its newest scan is "now" instead, so a replay shows
/// the floor as it was.
pub fn live_clock(
    wall: DateTime<Utc>,
    newest_scan: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, &'static str) {
    match newest_scan {
        Some(newest) if (wall - newest).num_hours().abs() >= 24 => (newest, "events"),
        Some(newest) if newest > wall => (newest, "events"),
        _ => (wall, "wall"),
    }
}

/// The zones a scanner counts for: its own (gate → venue, stand, room) and
/// its pole. Mirrors `footfall_hourly`.
pub fn zones_of<'v>(venue: &'v Venue, scanner_id: &str) -> Vec<(&'static str, &'v str)> {
    let Some(s) = venue.scanner(scanner_id) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(2);
    match s.zone_kind {
        ZoneKind::Gate => out.push(("venue", venue.id.as_str())),
        ZoneKind::Stand => out.push(("stand", s.zone_id.as_str())),
        ZoneKind::Room => out.push(("room", s.zone_id.as_str())),
        ZoneKind::Pole => {}
    }
    if let Some(pole) = &s.pole_id {
        out.push(("pole", pole.as_str()));
    }
    out
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_clock_is_the_wall_during_a_fair_and_the_newest_scan_in_a_replay() {
        let wall = t("2026-02-16T12:00:00Z");
        assert_eq!(live_clock(wall, None), (wall, "wall"));
        assert_eq!(
            live_clock(wall, Some(t("2026-02-16T11:59:00Z"))),
            (wall, "wall")
        );
        let replay = t("2026-02-15T18:00:00Z");
        assert_eq!(
            live_clock(t("2026-11-29T10:00:00Z"), Some(replay)),
            (replay, "events")
        );
        let ahead = t("2026-02-16T12:03:00Z");
        assert_eq!(live_clock(wall, Some(ahead)), (ahead, "events"));
    }

    #[test]
    fn a_stand_scanner_counts_for_its_stand_and_its_pole() {
        let venue = footfall_schemas::venue::reference();
        assert_eq!(
            zones_of(&venue, "stand-P017"),
            vec![("stand", "P017"), ("pole", "products")]
        );
        assert_eq!(
            zones_of(&venue, "gate-main-out"),
            vec![("venue", venue.id.as_str())]
        );
        assert!(zones_of(&venue, "no-such-scanner").is_empty());
    }
}
