//! The analytic views, defined in SQL over the event and dimension tables.
//! Each is documented in `docs/sql.md`; dashboards and reports use these, so
//! they all agree. All but `footfall_hourly` live in `views/<name>.sql`, one
//! file per view, so that they read (and diff) as SQL.

use crate::config::QueryConfig;

/// `footfall_hourly(local_day, local_hour, level, zone_id, entries, visitors)`
///
/// `entries` are distinct `in` events of the zone in that local hour,
/// `visitors` the distinct badges among them. A pole's zone is its own
/// scanners and its stands' (`pole_id` is set on both); the venue's is its
/// gates. Rows only where entries > 0 (grouping guarantees it).
const FOOTFALL_HOURLY: &str = "
CREATE VIEW footfall_hourly AS
WITH entries AS (
    SELECT local_day, local_hour, event_id, badge, zone_kind, zone_id, pole_id
    FROM scans WHERE direction = 'in'
)
SELECT local_day, local_hour, 'venue' AS level, (SELECT venue_id FROM venue) AS zone_id,
       count(DISTINCT event_id) AS entries, count(DISTINCT badge) AS visitors
FROM entries WHERE zone_kind = 'gate' GROUP BY local_day, local_hour
UNION ALL
SELECT local_day, local_hour, 'pole', pole_id,
       count(DISTINCT event_id), count(DISTINCT badge)
FROM entries WHERE pole_id IS NOT NULL GROUP BY local_day, local_hour, pole_id
UNION ALL
SELECT local_day, local_hour, 'stand', zone_id,
       count(DISTINCT event_id), count(DISTINCT badge)
FROM entries WHERE zone_kind = 'stand' GROUP BY local_day, local_hour, zone_id
UNION ALL
SELECT local_day, local_hour, 'room', zone_id,
       count(DISTINCT event_id), count(DISTINCT badge)
FROM entries WHERE zone_kind = 'room' GROUP BY local_day, local_hour, zone_id
";

/// Every view's name and `CREATE VIEW` text, in creation order (a view may use
/// the ones before it). `{dwell_cap_s}` in a text is the configured cap.
const VIEWS: &[(&str, &str)] = &[
    ("footfall_hourly", FOOTFALL_HOURLY),
    ("stand_visits", include_str!("views/stand_visits.sql")),
    (
        "session_attendance",
        include_str!("views/session_attendance.sql"),
    ),
    ("pole_flows", include_str!("views/pole_flows.sql")),
    (
        "daily_attendance",
        include_str!("views/daily_attendance.sql"),
    ),
    ("occupancy", include_str!("views/occupancy.sql")),
    ("ticket_sales", include_str!("views/ticket_sales.sql")),
    ("no_shows", include_str!("views/no_shows.sql")),
];

/// The names of the views, in creation order.
pub fn names() -> impl Iterator<Item = &'static str> {
    VIEWS.iter().map(|(name, _)| *name)
}

/// Every view's name and its `CREATE VIEW` statement for this configuration,
/// in creation order.
pub fn definitions(config: &QueryConfig) -> Vec<(&'static str, String)> {
    VIEWS
        .iter()
        .map(|(name, sql)| {
            let sql = sql.replace("{dwell_cap_s}", &config.stand_visit_dwell_cap_s.to_string());
            (*name, sql)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_file_creates_the_view_it_is_named_after() {
        for (name, sql) in definitions(&QueryConfig::default()) {
            assert!(
                sql.contains(&format!("CREATE VIEW {name} AS")),
                "{name} must create {name}"
            );
            assert!(!sql.contains('{'), "{name} has an unreplaced placeholder");
        }
    }

    #[test]
    fn the_dwell_cap_comes_from_the_config() {
        let config = QueryConfig {
            stand_visit_dwell_cap_s: 1800,
            ..QueryConfig::default()
        };
        let defs = definitions(&config);
        let (_, visits) = defs.iter().find(|(n, _)| *n == "stand_visits").unwrap();
        assert!(visits.contains("span_ms > 1800 * 1000"));
        assert!(visits.contains("INTERVAL '1800 seconds'"));
    }
}
