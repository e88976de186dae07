//! The built-in reference venue (venues/agadir-sse-2026.toml) loads and says
//! what the seed document says: four poles, 180 product stands, 15–21
//! February 2026 in Africa/Casablanca, and a scanner for every zone.

use chrono::{NaiveDate, Timelike};
use footfall_schemas::ZoneKind;
use footfall_schemas::venue::reference;
use std::collections::HashSet;

#[test]
fn four_poles_and_180_product_stands() {
    let venue = reference();
    assert_eq!(venue.id, "agadir-sse-2026");
    assert_eq!(venue.area_m2, 4000);
    assert_eq!(venue.time_zone.name(), "Africa/Casablanca");
    let poles: Vec<&str> = venue.poles.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        poles,
        ["products", "innovation", "institutional", "handicrafts"]
    );
    let products: Vec<_> = venue
        .stands
        .iter()
        .filter(|s| s.pole_id == "products")
        .collect();
    assert_eq!(products.len(), 180);
    // 180 exhibitors: one stand each.
    let exhibitors: HashSet<&str> = products.iter().map(|s| s.exhibitor_id.as_str()).collect();
    assert_eq!(exhibitors.len(), 180);
    for pole in &venue.poles {
        assert!(
            venue.stands.iter().any(|s| s.pole_id == pole.id),
            "pole {} has stands",
            pole.id
        );
        assert!(pole.capacity > 0 && pole.capacity <= venue.capacity);
    }
    // A few exhibitors hold two stands.
    let two = venue
        .exhibitors()
        .iter()
        .filter(|(id, _)| {
            venue
                .stands
                .iter()
                .filter(|s| s.exhibitor_id == *id)
                .count()
                == 2
        })
        .count();
    assert!((2..=10).contains(&two), "{two}");
}

#[test]
fn fair_days_are_15_to_21_february_2026() {
    let venue = reference();
    let dates: Vec<NaiveDate> = venue.days.iter().map(|d| d.date).collect();
    let expected: Vec<NaiveDate> = (15..=21)
        .map(|d| NaiveDate::from_ymd_opt(2026, 2, d).expect("a valid date"))
        .collect();
    assert_eq!(dates, expected);
    // After the switch to UTC+0 at 03:00 on the 15th, local time is UTC.
    let (opens, _) = venue.opening(&venue.days[0]);
    assert_eq!(opens.to_rfc3339(), "2026-02-15T10:00:00+00:00");
}

#[test]
fn every_zone_has_a_scanner() {
    let venue = reference();
    let zones: HashSet<(ZoneKind, &str)> = venue
        .scanners
        .iter()
        .map(|s| (s.zone_kind, s.zone_id.as_str()))
        .collect();
    for stand in &venue.stands {
        let scanner = venue
            .scanner(&format!("stand-{}", stand.id))
            .expect("stand-<ID> scanner");
        assert_eq!(scanner.stand_id.as_deref(), Some(stand.id.as_str()));
        assert_eq!(scanner.pole_id.as_deref(), Some(stand.pole_id.as_str()));
    }
    for room in &venue.rooms {
        assert!(
            zones.contains(&(ZoneKind::Room, room.id.as_str())),
            "room {}",
            room.id
        );
    }
    for pole in &venue.poles {
        assert!(
            zones.contains(&(ZoneKind::Pole, pole.id.as_str())),
            "pole {}",
            pole.id
        );
    }
    assert_eq!(venue.gates.len(), 2);
    for gate in &venue.gates {
        let lanes: Vec<&str> = venue
            .scanners
            .iter()
            .filter(|s| s.zone_kind == ZoneKind::Gate && s.zone_id == gate.id)
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            lanes.len(),
            2,
            "gate {} has an in-lane and an out-lane",
            gate.id
        );
        assert!(
            lanes.iter().any(|l| l.ends_with("-in")) && lanes.iter().any(|l| l.ends_with("-out"))
        );
    }
}

#[test]
fn the_programme_fits_the_opening_hours() {
    let venue = reference();
    assert!(
        (35..=45).contains(&venue.sessions.len()),
        "{}",
        venue.sessions.len()
    );
    assert_eq!(venue.rooms.len(), 3);
    for s in &venue.sessions {
        let day = venue
            .day(s.starts_at.date_naive())
            .expect("a session on a fair day");
        let (opens, closes) = venue.opening(day);
        assert!(s.starts_at >= opens && s.ends_at <= closes, "{}", s.id);
        assert_eq!(s.starts_at.minute() % 15, 0);
    }
    for day in &venue.days {
        assert!(
            venue
                .sessions
                .iter()
                .any(|s| s.starts_at.date_naive() == day.date),
            "{}",
            day.date
        );
    }
}
