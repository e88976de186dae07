//! The analytic views, defined in SQL over the event and dimension tables.
//! Each is documented in `docs/sql.md`; dashboards and reports use these, so
//! they all agree.

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

/// Every view, in creation order (a view may use the ones before it).
pub const VIEWS: &[(&str, &str)] = &[("footfall_hourly", FOOTFALL_HOURLY)];
