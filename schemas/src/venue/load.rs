//! Venue file loading: TOML into raw structs that keep the span of every
//! reference, then resolution into a [`Venue`] with line-numbered errors.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use toml::Spanned;

use super::{Day, Gate, Pole, Room, Scanner, Session, Stand, Venue, ZoneKind};
use crate::ids::check_token;

/// A venue file that cannot be used, with the line at fault when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for VenueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "venue file, line {line}: {}", self.message),
            None => write!(f, "venue file: {}", self.message),
        }
    }
}

impl std::error::Error for VenueError {}

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVenue {
    id: S,
    name: String,
    time_zone: S,
    area_m2: u32,
    capacity: u32,
    days: Vec<RawDay>,
    gates: Vec<RawGate>,
    poles: Vec<RawPole>,
    #[serde(default)]
    stands: Vec<RawStand>,
    #[serde(default)]
    rooms: Vec<RawRoom>,
    #[serde(default)]
    sessions: Vec<RawSession>,
    scanners: Vec<RawScanner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDay {
    date: S,
    opens: S,
    closes: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    id: S,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPole {
    id: S,
    name: String,
    capacity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStand {
    id: S,
    pole: S,
    exhibitor: S,
    exhibitor_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    id: S,
    name: String,
    capacity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    id: S,
    room: S,
    title: String,
    kind: S,
    starts_at: S,
    ends_at: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScanner {
    id: S,
    /// `kind:id`, e.g. `stand:P017`.
    zone: S,
}

struct Lines<'a> {
    source: &'a str,
}

impl Lines<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.source[..offset.min(self.source.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, at: &S, message: impl Into<String>) -> VenueError {
        VenueError {
            line: Some(self.line_of(at.span().start)),
            message: message.into(),
        }
    }
}

pub(super) fn load(source: &str) -> Result<Venue, VenueError> {
    let lines = Lines { source };
    let raw: RawVenue = toml::from_str(source).map_err(|e| VenueError {
        line: e.span().map(|s| lines.line_of(s.start)),
        message: e.message().to_owned(),
    })?;

    let tz: Tz = raw.time_zone.get_ref().parse().map_err(|_| {
        lines.err(
            &raw.time_zone,
            format!("unknown IANA time zone {:?}", raw.time_zone.get_ref()),
        )
    })?;
    let id = token(&lines, &raw.id)?;

    let mut days = Vec::new();
    for d in &raw.days {
        let date = NaiveDate::parse_from_str(d.date.get_ref(), "%Y-%m-%d")
            .map_err(|_| lines.err(&d.date, "date must be YYYY-MM-DD"))?;
        let opens = time(&lines, &d.opens)?;
        let closes = time(&lines, &d.closes)?;
        if closes <= opens {
            return Err(lines.err(&d.closes, "closes must be after opens on the same day"));
        }
        if days.iter().any(|x: &Day| x.date == date) {
            return Err(lines.err(&d.date, "this day is listed twice"));
        }
        days.push(Day {
            date,
            opens,
            closes,
        });
    }
    if days.is_empty() {
        return Err(VenueError {
            line: None,
            message: "at least one [[days]] entry is needed".into(),
        });
    }

    let mut ids = Ids::default();
    let gates = raw
        .gates
        .iter()
        .map(|g| {
            Ok(Gate {
                id: ids.add(&lines, "gate", &g.id)?,
                name: g.name.clone(),
            })
        })
        .collect::<Result<Vec<_>, VenueError>>()?;
    let poles = raw
        .poles
        .iter()
        .map(|p| {
            Ok(Pole {
                id: ids.add(&lines, "pole", &p.id)?,
                name: p.name.clone(),
                capacity: p.capacity,
            })
        })
        .collect::<Result<Vec<_>, VenueError>>()?;
    let stands = raw
        .stands
        .iter()
        .map(|s| {
            Ok(Stand {
                id: ids.add(&lines, "stand", &s.id)?,
                pole_id: ids.resolve(&lines, "pole", &s.pole)?,
                exhibitor_id: token(&lines, &s.exhibitor)?,
                exhibitor_name: s.exhibitor_name.clone(),
            })
        })
        .collect::<Result<Vec<_>, VenueError>>()?;
    let rooms = raw
        .rooms
        .iter()
        .map(|r| {
            Ok(Room {
                id: ids.add(&lines, "room", &r.id)?,
                name: r.name.clone(),
                capacity: r.capacity,
            })
        })
        .collect::<Result<Vec<_>, VenueError>>()?;
    let sessions = raw
        .sessions
        .iter()
        .map(|s| {
            let kind = s.kind.get_ref();
            if !matches!(kind.as_str(), "seminar" | "workshop" | "lecture") {
                return Err(lines.err(&s.kind, "kind must be seminar, workshop or lecture"));
            }
            let starts_at = local_time(&lines, tz, &s.starts_at)?;
            let ends_at = local_time(&lines, tz, &s.ends_at)?;
            if ends_at <= starts_at {
                return Err(lines.err(&s.ends_at, "ends_at must be after starts_at"));
            }
            Ok(Session {
                id: ids.add(&lines, "session", &s.id)?,
                room_id: ids.resolve(&lines, "room", &s.room)?,
                title: s.title.clone(),
                kind: kind.clone(),
                starts_at,
                ends_at,
            })
        })
        .collect::<Result<Vec<_>, VenueError>>()?;

    let stand_pole: HashMap<&str, &str> = stands
        .iter()
        .map(|s| (s.id.as_str(), s.pole_id.as_str()))
        .collect();
    let mut scanners = Vec::new();
    for s in &raw.scanners {
        let id = ids.add(&lines, "scanner", &s.id)?;
        let (kind, zone_id) = s
            .zone
            .get_ref()
            .split_once(':')
            .and_then(|(k, z)| Some((ZoneKind::parse(k)?, z)))
            .ok_or_else(|| {
                lines.err(
                    &s.zone,
                    "zone must be gate:ID, pole:ID, stand:ID or room:ID",
                )
            })?;
        let zone = Spanned::new(s.zone.span(), zone_id.to_owned());
        let zone_id = ids.resolve(&lines, kind.as_str(), &zone)?;
        let (pole_id, stand_id, room_id) = match kind {
            ZoneKind::Gate => (None, None, None),
            ZoneKind::Pole => (Some(zone_id.clone()), None, None),
            ZoneKind::Stand => (
                Some(stand_pole[zone_id.as_str()].to_owned()),
                Some(zone_id.clone()),
                None,
            ),
            ZoneKind::Room => (None, None, Some(zone_id.clone())),
        };
        scanners.push(Scanner {
            id,
            zone_kind: kind,
            zone_id,
            pole_id,
            stand_id,
            room_id,
        });
    }
    if !scanners.iter().any(|s| s.zone_kind == ZoneKind::Gate) {
        return Err(VenueError {
            line: None,
            message: "the venue needs at least one gate scanner".into(),
        });
    }

    let scanner_index = scanners
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let stand_index = stands
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    Ok(Venue {
        id,
        name: raw.name,
        time_zone: tz,
        area_m2: raw.area_m2,
        capacity: raw.capacity,
        days,
        gates,
        poles,
        stands,
        rooms,
        sessions,
        scanners,
        scanner_index,
        stand_index,
    })
}

/// Ids by kind. Gates, poles, stands and rooms share the zone namespace of
/// their kind only; scanners and sessions have their own.
#[derive(Default)]
struct Ids {
    seen: HashSet<(&'static str, String)>,
}

impl Ids {
    fn add(&mut self, lines: &Lines, kind: &'static str, id: &S) -> Result<String, VenueError> {
        let value = token(lines, id)?;
        if !self.seen.insert((kind, value.clone())) {
            return Err(lines.err(id, format!("{kind} {value:?} is defined twice")));
        }
        Ok(value)
    }

    fn resolve(&self, lines: &Lines, kind: &'static str, id: &S) -> Result<String, VenueError> {
        let value = id.get_ref();
        if !self.seen.contains(&(kind, value.clone())) {
            return Err(lines.err(
                id,
                format!("unknown {kind} {value:?} (define it before it is used)"),
            ));
        }
        Ok(value.clone())
    }
}

fn token(lines: &Lines, id: &S) -> Result<String, VenueError> {
    check_token(id.get_ref(), 64)
        .map_err(|why| lines.err(id, format!("id {:?} {why}", id.get_ref())))?;
    Ok(id.get_ref().clone())
}

fn time(lines: &Lines, text: &S) -> Result<NaiveTime, VenueError> {
    NaiveTime::parse_from_str(text.get_ref(), "%H:%M")
        .map_err(|_| lines.err(text, "time must be HH:MM"))
}

fn local_time(lines: &Lines, tz: Tz, text: &S) -> Result<DateTime<Utc>, VenueError> {
    let naive = NaiveDateTime::parse_from_str(text.get_ref(), "%Y-%m-%dT%H:%M").map_err(|_| {
        lines.err(
            text,
            "local time must be YYYY-MM-DDTHH:MM (venue time, no offset)",
        )
    })?;
    Ok(local_to_utc(tz, naive))
}

pub(super) fn local_to_utc(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        // A skipped wall-clock time: step forward a minute at a time to the
        // first one that exists (a gap is at most a few hours).
        LocalResult::None => (1..=24 * 60)
            .find_map(|m| {
                tz.from_local_datetime(&(naive + chrono::Duration::minutes(m)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
id = "t"
name = "Test"
time_zone = "Africa/Casablanca"
area_m2 = 100
capacity = 10

[[days]]
date = "2026-02-15"
opens = "10:00"
closes = "20:00"

[[gates]]
id = "main"
name = "Main"

[[poles]]
id = "products"
name = "Products"
capacity = 5

[[stands]]
id = "P1"
pole = "products"
exhibitor = "E1"
exhibitor_name = "Coop"

[[scanners]]
id = "gate-main-in"
zone = "gate:main"

[[scanners]]
id = "stand-P1"
zone = "stand:P1"
"#;

    #[test]
    fn loads_and_resolves() {
        let v = load(SMALL).unwrap();
        let s = v.scanner("stand-P1").unwrap();
        assert_eq!(s.pole_id.as_deref(), Some("products"));
        assert_eq!(s.zone_kind, ZoneKind::Stand);
    }

    #[test]
    fn unknown_pole_names_the_line() {
        let bad = SMALL.replace("pole = \"products\"", "pole = \"food\"");
        let e = load(&bad).unwrap_err();
        let line = bad.lines().position(|l| l.contains("\"food\"")).unwrap() + 1;
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.message.contains("unknown pole"), "{e}");
    }

    #[test]
    fn unknown_zone_names_the_line() {
        let bad = SMALL.replace("zone = \"stand:P1\"", "zone = \"room:R9\"");
        let e = load(&bad).unwrap_err();
        let line = bad.lines().position(|l| l.contains("room:R9")).unwrap() + 1;
        assert_eq!(e.line, Some(line), "{e}");
    }

    #[test]
    fn typo_in_a_key_is_refused() {
        let bad = SMALL.replace("capacity = 5", "capacty = 5");
        let e = load(&bad).unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn casablanca_switch_2026() {
        // 03:00 local on 15 Feb 2026 becomes 02:00: 02:30 happens twice.
        let tz: Tz = "Africa/Casablanca".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 2, 15).unwrap();
        let t = local_to_utc(tz, d.and_hms_opt(2, 30, 0).unwrap());
        assert_eq!(t.to_rfc3339(), "2026-02-15T01:30:00+00:00");
        let t = local_to_utc(tz, d.and_hms_opt(10, 0, 0).unwrap());
        assert_eq!(t.to_rfc3339(), "2026-02-15T10:00:00+00:00");
    }
}
