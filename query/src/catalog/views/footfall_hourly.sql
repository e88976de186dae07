-- footfall_hourly(local_day, local_hour, level, zone_id, entries, visitors)
-- See docs/sql.md. The server counts it by day with the operator in
-- ../hourly.rs; this is the readable rule its tests check it against.
--
-- `entries` are distinct `in` events of the zone in that local hour,
-- `visitors` the distinct badges among them. `scans` holds each event once
-- (a resent event carries its badge, the log's key, so it reaches the same
-- partition, where the materialiser drops it), so entries count rows. A
-- pole's zone is its own scanners and its stands' (`pole_id` is set on
-- both); the venue's is its gates. Rows only where entries > 0 (grouping
-- guarantees it).
CREATE VIEW footfall_hourly AS
WITH entries AS (
    SELECT local_day, local_hour, badge, zone_kind, zone_id, pole_id
    FROM scans WHERE direction = 'in'
)
SELECT local_day, local_hour, 'venue' AS level, (SELECT venue_id FROM venue) AS zone_id,
       count(*) AS entries, count(DISTINCT badge) AS visitors
FROM entries WHERE zone_kind = 'gate' GROUP BY local_day, local_hour
UNION ALL
SELECT local_day, local_hour, 'pole', pole_id,
       count(*), count(DISTINCT badge)
FROM entries WHERE pole_id IS NOT NULL GROUP BY local_day, local_hour, pole_id
UNION ALL
SELECT local_day, local_hour, 'stand', zone_id,
       count(*), count(DISTINCT badge)
FROM entries WHERE zone_kind = 'stand' GROUP BY local_day, local_hour, zone_id
UNION ALL
SELECT local_day, local_hour, 'room', zone_id,
       count(*), count(DISTINCT badge)
FROM entries WHERE zone_kind = 'room' GROUP BY local_day, local_hour, zone_id
