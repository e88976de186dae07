//! End-to-end properties of simulated runs, checked from the emitted lines
//! only: determinism, the truth against an independent recount, fault rates,
//! wire validity, and behaviour that a real fair would show.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use footfall_schemas::events::parse_event;
use footfall_schemas::{Venue, ZoneKind};
use footfall_sim::{Faults, OutKind, Outgoing, SimConfig, SimStats, Simulator};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

struct Run {
    lines: Vec<Outgoing>,
    truth_ndjson: String,
    truth_rows: usize,
    stats: SimStats,
}

fn run(venue: &Venue, config: SimConfig) -> Run {
    let mut sim = Simulator::new(venue, config).expect("a valid config");
    let mut lines = Vec::new();
    while let Some(chunk) = sim.next_chunk() {
        lines.extend(chunk);
    }
    let mut truth = Vec::new();
    sim.truth()
        .write_ndjson(&mut truth)
        .expect("writing to memory");
    Run {
        lines,
        truth_ndjson: String::from_utf8(truth).expect("utf-8"),
        truth_rows: sim.truth().len(),
        stats: sim.stats().clone(),
    }
}

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        visitors_per_day: Some(300),
        ..SimConfig::default()
    }
}

fn stormy(seed: u64) -> SimConfig {
    SimConfig {
        faults: Faults {
            retry_rate: 0.05,
            offline_rate: 0.1,
            skewed_clock_rate: 0.2,
            malformed_rate: 0.01,
            ..Faults::default()
        },
        ..small(seed)
    }
}

fn ts_of(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["ts"].as_str().expect("ts"))
        .expect("an RFC 3339 ts")
        .with_timezone(&Utc)
}

/// The valid events, first copy of each event id, parsed independently of
/// the simulator's code.
fn valid_events(lines: &[Outgoing]) -> Vec<Value> {
    let mut seen = HashSet::new();
    lines
        .iter()
        .filter(|o| o.kind != OutKind::Malformed)
        .map(|o| serde_json::from_str::<Value>(&o.line).expect("valid lines are JSON"))
        .filter(|v| seen.insert(v["event_id"].as_str().expect("event_id").to_owned()))
        .collect()
}

/// `footfall_hourly` recounted from the lines, as NDJSON in the truth's order.
fn recount(venue: &Venue, lines: &[Outgoing]) -> String {
    let mut cells: BTreeMap<(NaiveDateTime, &str, String), (u64, HashSet<String>)> =
        BTreeMap::new();
    for v in valid_events(lines) {
        if v["type"] != "badge_scan" || v["direction"] != "in" {
            continue;
        }
        let scanner = venue
            .scanner(v["scanner_id"].as_str().expect("scanner_id"))
            .expect("a known scanner");
        let local = ts_of(&v).with_timezone(&venue.time_zone).naive_local();
        let hour = local
            .date()
            .and_hms_opt(local.hour(), 0, 0)
            .expect("an hour start");
        let mut zones = Vec::new();
        match scanner.zone_kind {
            ZoneKind::Gate => zones.push(("venue", venue.id.clone())),
            ZoneKind::Room => zones.push(("room", scanner.zone_id.clone())),
            ZoneKind::Stand => zones.push(("stand", scanner.zone_id.clone())),
            ZoneKind::Pole => {}
        }
        if let Some(pole) = &scanner.pole_id {
            zones.push(("pole", pole.clone()));
        }
        for (level, zone) in zones {
            let cell = cells.entry((hour, level, zone)).or_default();
            cell.0 += 1;
            cell.1
                .insert(v["badge_id"].as_str().expect("badge_id").to_owned());
        }
    }
    let mut out = String::new();
    for ((hour, level, zone), (entries, badges)) in cells {
        out.push_str(&format!(
            "{{\"local_day\":\"{}\",\"local_hour\":\"{}\",\"level\":\"{level}\",\"zone_id\":\"{zone}\",\"entries\":{entries},\"visitors\":{}}}\n",
            hour.format("%Y-%m-%d"),
            hour.format("%Y-%m-%dT%H:%M:%S"),
            badges.len()
        ));
    }
    out
}

#[test]
fn same_seed_same_bytes_whatever_the_chunk_size() {
    let venue = footfall_schemas::venue::reference();
    let a = run(
        &venue,
        SimConfig {
            days: 2,
            ..small(7)
        },
    );
    let b = run(
        &venue,
        SimConfig {
            days: 2,
            chunk_lines: 777,
            ..small(7)
        },
    );
    let c = run(
        &venue,
        SimConfig {
            days: 2,
            ..small(8)
        },
    );
    let text = |r: &Run| {
        r.lines
            .iter()
            .map(|o| format!("{} {}\n", o.send_at.timestamp_millis(), o.line))
            .collect::<String>()
    };
    assert!(a.lines.len() > 10_000);
    assert_eq!(text(&a), text(&b));
    assert_eq!(a.truth_ndjson, b.truth_ndjson);
    assert_eq!(a.stats, b.stats);
    assert_ne!(text(&a), text(&c));
}

#[test]
fn write_chunk_writes_the_same_lines() {
    let venue = footfall_schemas::venue::reference();
    let config = SimConfig {
        days: 1,
        chunk_lines: 5000,
        ..stormy(17)
    };
    let expected = run(&venue, config.clone());
    let mut sim = Simulator::new(&venue, config).expect("a valid config");
    let mut bytes = Vec::new();
    while let Some(n) = sim.write_chunk(&mut bytes).expect("writing to memory") {
        assert!((1..=5000).contains(&n));
    }
    let lines: String = expected
        .lines
        .iter()
        .map(|o| format!("{}\n", o.line))
        .collect();
    assert!(String::from_utf8(bytes).expect("ASCII") == lines);
    assert_eq!(sim.stats(), &expected.stats);
    let mut truth = Vec::new();
    sim.truth()
        .write_ndjson(&mut truth)
        .expect("writing to memory");
    assert_eq!(
        String::from_utf8(truth).expect("utf-8"),
        expected.truth_ndjson
    );
}

#[test]
fn truth_matches_a_recount_of_the_lines() {
    let venue = footfall_schemas::venue::reference();
    let r = run(&venue, stormy(11));
    assert!(r.truth_rows > 1000);
    assert_eq!(r.truth_ndjson, recount(&venue, &r.lines));
}

#[test]
fn faults_show_at_their_rates() {
    let venue = footfall_schemas::venue::reference();
    let config = stormy(12);
    let faults = config.faults.clone();
    let r = run(&venue, config);
    let s = &r.stats;
    let events = (s.scans + s.tickets_issued + s.tickets_cancelled) as f64;
    // A tenth of retried events are sent twice.
    let retry = s.retries as f64 / events / 1.1;
    assert!(
        (retry - faults.retry_rate).abs() < faults.retry_rate * 0.15,
        "{retry}"
    );
    let malformed = s.malformed as f64 / s.scans as f64;
    assert!(
        (malformed - faults.malformed_rate).abs() < faults.malformed_rate * 0.2,
        "{malformed}"
    );
    let scanners = venue.scanners.len() as f64;
    assert!(
        (s.skewed_scanners as f64 / scanners - faults.skewed_clock_rate).abs() < 0.07,
        "{s:?}"
    );
    let outages = s.outages as f64 / (scanners * 7.0);
    assert!((outages - faults.offline_rate).abs() < 0.03, "{outages}");
    assert!(s.late_uploads > 0);

    let mut late = 0;
    let mut first: HashMap<String, &str> = HashMap::new();
    for o in &r.lines {
        if o.kind == OutKind::Malformed {
            continue;
        }
        let v: Value = serde_json::from_str(&o.line).expect("JSON");
        let ts = ts_of(&v);
        // Never more than five minutes ahead of sending (ingest's clock_skew).
        assert!(ts - o.send_at < chrono::Duration::minutes(5), "{}", o.line);
        if o.send_at - ts > chrono::Duration::minutes(30) {
            late += 1;
        }
        let id = o.event_id.clone().expect("valid lines have an event id");
        match o.kind {
            OutKind::Retry => assert_eq!(
                first.get(&id),
                Some(&o.line.as_str()),
                "a retry repeats its line"
            ),
            _ => assert!(first.insert(id, &o.line).is_none(), "event ids are unique"),
        }
    }
    assert!(late > 100, "{late}");
    let no_faults = run(
        &venue,
        SimConfig {
            faults: Faults::none(),
            days: 1,
            ..small(12)
        },
    );
    let s = &no_faults.stats;
    assert_eq!(
        (
            s.retries,
            s.malformed,
            s.late_uploads,
            s.outages,
            s.skewed_scanners
        ),
        (0, 0, 0, 0, 0)
    );
}

#[test]
fn every_line_parses_unless_malformed() {
    let venue = footfall_schemas::venue::reference();
    let r = run(
        &venue,
        SimConfig {
            days: 3,
            ..stormy(13)
        },
    );
    let mut offsets = HashSet::new();
    let mut malformed = 0;
    for o in &r.lines {
        match parse_event(&o.line) {
            Ok(event) => {
                offsets.insert(event.ts().offset().local_minus_utc());
                let scanner = match &event {
                    footfall_schemas::Event::BadgeScan(scan) => {
                        Some(scan.scanner_id.as_str().to_owned())
                    }
                    footfall_schemas::Event::Ticket(_) => None,
                };
                let known = scanner
                    .as_deref()
                    .is_none_or(|s| venue.scanner(s).is_some());
                if o.kind == OutKind::Malformed {
                    // Parses, but names a scanner the venue does not have.
                    assert!(!known, "{}", o.line);
                    malformed += 1;
                } else {
                    assert!(known, "{}", o.line);
                    assert_eq!(o.event_id.as_deref(), Some(event.event_id().as_str()));
                }
            }
            Err(e) => {
                assert_eq!(o.kind, OutKind::Malformed, "{}: {e}", o.line);
                malformed += 1;
            }
        }
    }
    assert_eq!(malformed, r.stats.malformed);
    assert!(malformed > 50);
    // A mix of `Z`, +01:00 (before the switch) and +00:00.
    assert!(
        offsets.contains(&0) && offsets.contains(&3600),
        "{offsets:?}"
    );
    assert!(
        r.lines.iter().any(|o| o.line.contains("Z\","))
            && r.lines.iter().any(|o| o.line.contains("+00:00"))
    );
}

#[test]
fn stream_is_in_send_order_and_ends_with_the_last_day() {
    let venue = footfall_schemas::venue::reference();
    let r = run(
        &venue,
        SimConfig {
            days: 2,
            ..stormy(14)
        },
    );
    assert!(r.lines.windows(2).all(|w| w[0].send_at <= w[1].send_at));
    // Two days simulated: nothing from 17 February on, local time.
    let end = venue.local_to_utc(venue.days[2].date, chrono::NaiveTime::MIN);
    for o in &r.lines {
        assert!(o.send_at < end, "{}", o.line);
        if let Ok(v) = serde_json::from_str::<Value>(&o.line) {
            assert!(ts_of(&v) < end, "{}", o.line);
        }
    }
    assert_eq!(r.stats.days, 2);
    // Scans start on the first day; online sales weeks before.
    let first_day = venue.local_to_utc(venue.days[0].date, chrono::NaiveTime::MIN);
    let scans: Vec<&Outgoing> = r
        .lines
        .iter()
        .filter(|o| o.line.contains("badge_scan"))
        .collect();
    assert!(scans.iter().all(|o| o.send_at >= first_day));
    assert!(
        r.lines
            .first()
            .is_some_and(|o| o.send_at < first_day - chrono::Duration::days(14))
    );
}

/// A scan's `ts` and whether it is an entry.
type Scan = (DateTime<Utc>, bool);

#[test]
fn visitors_behave() {
    let venue = footfall_schemas::venue::reference();
    let r = run(&venue, small(15));
    let events = valid_events(&r.lines);
    let mut by_badge_scanner: HashMap<(String, String), Vec<Scan>> = HashMap::new();
    let mut days_of: HashMap<String, HashSet<chrono::NaiveDate>> = HashMap::new();
    let mut cancelled = HashSet::new();
    let mut issued: HashMap<String, DateTime<Utc>> = HashMap::new();
    for v in &events {
        let badge = v["badge_id"].as_str().expect("badge").to_owned();
        if v["type"] == "ticket" {
            match v["action"].as_str() {
                Some("cancelled") => {
                    cancelled.insert(badge);
                }
                _ => {
                    issued.insert(badge, ts_of(v));
                }
            }
            continue;
        }
        let scanner = v["scanner_id"].as_str().expect("scanner").to_owned();
        days_of
            .entry(badge.clone())
            .or_default()
            .insert(ts_of(v).date_naive());
        by_badge_scanner
            .entry((badge, scanner))
            .or_default()
            .push((ts_of(v), v["direction"] == "in"));
    }
    // At a stand or a room, an `out` always follows an `in`.
    for ((badge, scanner), mut scans) in by_badge_scanner.clone() {
        let kind = venue.scanner(&scanner).expect("known").zone_kind;
        if !matches!(kind, ZoneKind::Stand | ZoneKind::Room) {
            continue;
        }
        scans.sort();
        let mut open = false;
        for (_, is_in) in scans {
            // Some outs are never scanned, so two ins may follow each other.
            assert!(is_in || open, "{badge} left {scanner} before entering");
            open = is_in;
        }
    }
    // Everyone scanned has a ticket issued before (clock skew aside); no
    // cancelled ticket is ever used.
    for ((badge, _), scans) in &by_badge_scanner {
        assert!(!cancelled.contains(badge), "{badge}");
        let first = scans.iter().map(|s| s.0).min().expect("a scan");
        assert!(
            issued[badge] <= first + chrono::Duration::minutes(5),
            "{badge}"
        );
    }
    assert!(!cancelled.is_empty());
    // No-shows: issued tickets never scanned.
    assert!(issued.keys().filter(|b| !days_of.contains_key(*b)).count() > 50);
    // Returning visitors.
    let returning = days_of
        .iter()
        .filter(|(b, d)| b.starts_with("V-") && d.len() > 1)
        .count();
    assert!(returning > 100, "{returning}");
    // Every room and every pole entrance sees people.
    for scanner in venue
        .scanners
        .iter()
        .filter(|s| matches!(s.zone_kind, ZoneKind::Room | ZoneKind::Pole))
    {
        assert!(
            by_badge_scanner.keys().any(|(_, s)| *s == scanner.id),
            "{}",
            scanner.id
        );
    }
    // Stand visits mostly end with an out scan.
    let (ins, outs) = by_badge_scanner
        .iter()
        .filter(|((_, s), _)| s.starts_with("stand-"))
        .flat_map(|(_, v)| v)
        .fold(
            (0, 0),
            |(i, o), s| if s.1 { (i + 1, o) } else { (i, o + 1) },
        );
    let share = f64::from(outs) / f64::from(ins);
    assert!((0.8..0.9).contains(&share), "{share}");
}

#[test]
fn session_attendance_respects_capacity() {
    let venue = footfall_schemas::venue::reference();
    // Enough visitors to fill the rooms.
    let r = run(
        &venue,
        SimConfig {
            days: 1,
            visitors_per_day: Some(5000),
            ..SimConfig::default()
        },
    );
    let events = valid_events(&r.lines);
    for s in venue
        .sessions
        .iter()
        .filter(|s| s.starts_at.date_naive() == venue.days[0].date)
    {
        let scanners: HashSet<&str> = venue
            .scanners
            .iter()
            .filter(|x| x.room_id.as_deref() == Some(s.room_id.as_str()))
            .map(|x| x.id.as_str())
            .collect();
        let audience: HashSet<&str> = events
            .iter()
            .filter(|v| {
                v["direction"] == "in" && scanners.contains(v["scanner_id"].as_str().unwrap_or(""))
            })
            .filter(|v| {
                let t = ts_of(v);
                t >= s.starts_at - chrono::Duration::minutes(20)
                    && t < s.starts_at + chrono::Duration::minutes(20)
            })
            .map(|v| v["badge_id"].as_str().unwrap_or(""))
            .collect();
        let capacity = venue.room(&s.room_id).expect("room").capacity as usize;
        assert!(audience.len() <= capacity, "{}: {}", s.id, audience.len());
        assert!(
            audience.len() >= capacity / 3,
            "{}: {} of {capacity}",
            s.id,
            audience.len()
        );
    }
}

const NIGHT_VENUE: &str = r#"
id = "night"
name = "Night market across the DST switch"
time_zone = "Africa/Casablanca"
area_m2 = 500
capacity = 400
days = [
  { date = "2026-02-14", opens = "18:00", closes = "23:59" },
  { date = "2026-02-15", opens = "00:00", closes = "06:00" },
]
gates = [{ id = "g", name = "Gate" }]
poles = [{ id = "food", name = "Food", capacity = 300 }, { id = "empty", name = "Nothing scanned", capacity = 10 }]
stands = [
  { id = "A", pole = "food", exhibitor = "a", exhibitor_name = "Stall \"A\"" },
  { id = "B", pole = "food", exhibitor = "b", exhibitor_name = "Stall B" },
  { id = "C", pole = "empty", exhibitor = "c", exhibitor_name = "Stall C" },
]
scanners = [
  { id = "gate", zone = "gate:g" },
  { id = "stand-A", zone = "stand:A" },
  { id = "stand-B", zone = "stand:B" },
]
"#;

#[test]
fn any_venue_and_the_dst_night() {
    let venue = Venue::from_toml(NIGHT_VENUE).expect("a valid venue");
    let r = run(&venue, stormy(16));
    assert!(r.stats.scans > 1000);
    assert_eq!(r.truth_ndjson, recount(&venue, &r.lines));
    // Local 02:00 on the 15th spans two real hours (01:00Z-03:00Z): it
    // collects about twice the entries of its neighbours.
    let venue_entries = |hour: &str| -> u64 {
        r.truth_ndjson
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
            .find(|v| v["local_hour"] == hour && v["level"] == "venue")
            .map_or(0, |v| v["entries"].as_u64().unwrap_or(0))
    };
    let (one, two, three) = (
        venue_entries("2026-02-15T01:00:00"),
        venue_entries("2026-02-15T02:00:00"),
        venue_entries("2026-02-15T03:00:00"),
    );
    assert!(two > one && two > three, "{one} {two} {three}");
    // Each day's rows stay on its own local date.
    let days: HashSet<String> = r
        .truth_ndjson
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["local_day"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        days,
        HashSet::from(["2026-02-14".to_owned(), "2026-02-15".to_owned()])
    );
}
