//! The venue model: poles, stands, rooms, the session programme, gates and the
//! scanners that bind each scan to one zone, with capacities, opening days and
//! the time zone. Loaded from a TOML venue file (see `venues/`).
//!
//! Invariant: every reference in a [`Venue`] resolves (a stand's pole, a
//! session's room, a scanner's zone); the loader refuses a file where one does
//! not, naming the line.

mod load;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::fmt;

pub use load::VenueError;

/// The kind of zone a scanner stands in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZoneKind {
    Gate,
    Pole,
    Stand,
    Room,
}

impl ZoneKind {
    pub const ALL: [ZoneKind; 4] = [Self::Gate, Self::Pole, Self::Stand, Self::Room];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gate => "gate",
            Self::Pole => "pole",
            Self::Stand => "stand",
            Self::Room => "room",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for ZoneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Day {
    pub date: NaiveDate,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pole {
    pub id: String,
    pub name: String,
    pub capacity: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stand {
    pub id: String,
    pub pole_id: String,
    pub exhibitor_id: String,
    pub exhibitor_name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Room {
    pub id: String,
    pub name: String,
    pub capacity: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: String,
    pub room_id: String,
    pub title: String,
    /// `seminar`, `workshop` or `lecture`.
    pub kind: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub id: String,
    pub name: String,
}

/// A scanner with its zone resolved to every level it counts for.
#[derive(Clone, Debug, PartialEq)]
pub struct Scanner {
    pub id: String,
    pub zone_kind: ZoneKind,
    pub zone_id: String,
    /// The pole of a pole-entrance scanner, or of a stand's scanner.
    pub pole_id: Option<String>,
    pub stand_id: Option<String>,
    pub room_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Venue {
    pub id: String,
    pub name: String,
    pub time_zone: Tz,
    pub area_m2: u32,
    /// How many people may be inside the venue at once.
    pub capacity: u32,
    pub days: Vec<Day>,
    pub gates: Vec<Gate>,
    pub poles: Vec<Pole>,
    pub stands: Vec<Stand>,
    pub rooms: Vec<Room>,
    pub sessions: Vec<Session>,
    pub scanners: Vec<Scanner>,
    scanner_index: HashMap<String, usize>,
    stand_index: HashMap<String, usize>,
}

impl Venue {
    /// Parses and checks a venue file. Fails with the line of the first
    /// problem: bad TOML, a duplicate id, or a reference that does not resolve.
    pub fn from_toml(source: &str) -> Result<Self, VenueError> {
        load::load(source)
    }

    /// Reads a venue file from disk; see [`Venue::from_toml`].
    pub fn from_path(path: &std::path::Path) -> Result<Self, VenueError> {
        let source = std::fs::read_to_string(path).map_err(|e| VenueError {
            line: None,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::from_toml(&source)
    }

    pub fn scanner(&self, id: &str) -> Option<&Scanner> {
        self.scanner_index.get(id).map(|&i| &self.scanners[i])
    }

    pub fn stand(&self, id: &str) -> Option<&Stand> {
        self.stand_index.get(id).map(|&i| &self.stands[i])
    }

    pub fn pole(&self, id: &str) -> Option<&Pole> {
        self.poles.iter().find(|p| p.id == id)
    }

    pub fn room(&self, id: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| r.id == id)
    }

    pub fn day(&self, date: NaiveDate) -> Option<&Day> {
        self.days.iter().find(|d| d.date == date)
    }

    /// The instant a local wall-clock time happens at the venue. In a
    /// repeated hour the earlier instant wins; in a skipped one, the first
    /// valid instant after it.
    pub fn local_to_utc(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        load::local_to_utc(self.time_zone, date.and_time(time))
    }

    /// Opening and closing instants of a fair day.
    pub fn opening(&self, day: &Day) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            self.local_to_utc(day.date, day.opens),
            self.local_to_utc(day.date, day.closes),
        )
    }

    /// Exhibitor ids with their names, in order of first appearance.
    pub fn exhibitors(&self) -> Vec<(&str, &str)> {
        let mut seen = std::collections::HashSet::new();
        self.stands
            .iter()
            .filter(|s| seen.insert(s.exhibitor_id.as_str()))
            .map(|s| (s.exhibitor_id.as_str(), s.exhibitor_name.as_str()))
            .collect()
    }
}

/// The reference venue, built into every binary so that `footfall serve`
/// works from any folder.
pub const REFERENCE_VENUE_TOML: &str = include_str!("../../../venues/agadir-sse-2026.toml");

/// Loads [`REFERENCE_VENUE_TOML`].
pub fn reference() -> Venue {
    Venue::from_toml(REFERENCE_VENUE_TOML)
        .expect("the built-in reference venue is checked by its own test")
}
