-- stand_visits(badge, stand_id, pole_id, local_day, entered_at, left_at, dwell_s, closed_by)
-- One row per visit of a badge to a stand; see docs/sql.md. The server
-- computes it with the operator in ../stand_visits.rs; this is the readable
-- rule its test checks it against (`{dwell_cap_s}` is the test's cap).
CREATE VIEW stand_visits AS
WITH seq AS (
    SELECT badge, local_day, ts, event_id, zone_kind, stand_id, pole_id, direction,
           CASE WHEN zone_kind = 'stand' AND direction = 'in' THEN stand_id END AS in_stand
    FROM scans
), marked AS (
    SELECT *,
           LAG(in_stand) OVER w AS prev_in_stand,
           LEAD(ts) OVER w AS next_ts,
           LEAD(zone_kind) OVER w AS next_kind,
           LEAD(stand_id) OVER w AS next_stand,
           LEAD(direction) OVER w AS next_direction
    FROM seq
    WINDOW w AS (PARTITION BY badge, local_day ORDER BY ts, event_id)
), runs AS (
    -- A run is an `in` at a stand and the `in`s there right after it; any
    -- other scan is a run of its own.
    SELECT *,
           SUM(CASE WHEN in_stand IS NOT NULL AND in_stand = prev_in_stand THEN 0 ELSE 1 END)
               OVER (PARTITION BY badge, local_day ORDER BY ts, event_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run
    FROM marked
), visits AS (
    SELECT badge, in_stand AS stand_id, local_day,
           first_value(pole_id ORDER BY ts, event_id) AS pole_id,
           min(ts) AS entered_at,
           last_value(next_ts ORDER BY ts, event_id) AS next_ts,
           last_value(next_kind ORDER BY ts, event_id) AS next_kind,
           last_value(next_stand ORDER BY ts, event_id) AS next_stand,
           last_value(next_direction ORDER BY ts, event_id) AS next_direction
    FROM runs
    WHERE in_stand IS NOT NULL
    GROUP BY badge, local_day, run, in_stand
), closed AS (
    SELECT v.badge, v.stand_id, v.pole_id, v.local_day, v.entered_at,
           CASE
               WHEN v.next_ts IS NULL THEN 'closing'
               WHEN v.next_kind = 'stand' AND v.next_stand = v.stand_id AND v.next_direction = 'out' THEN 'out'
               ELSE 'next_scan'
           END AS rule,
           CASE
               WHEN v.next_ts IS NOT NULL THEN v.next_ts
               WHEN o.closes_at IS NULL OR o.closes_at < v.entered_at THEN v.entered_at
               ELSE o.closes_at
           END AS until
    FROM visits v LEFT JOIN opening_hours o ON o.local_day = v.local_day
), timed AS (
    SELECT *, CAST(until AS BIGINT) - CAST(entered_at AS BIGINT) AS span_ms FROM closed
)
SELECT badge, stand_id, pole_id, local_day, entered_at,
       CASE WHEN span_ms > {dwell_cap_s} * 1000
            THEN entered_at + INTERVAL '{dwell_cap_s} seconds'
            ELSE until END AS left_at,
       CASE WHEN span_ms > {dwell_cap_s} * 1000 THEN CAST({dwell_cap_s} AS BIGINT)
            ELSE span_ms / 1000 END AS dwell_s,
       CASE WHEN span_ms > {dwell_cap_s} * 1000 THEN 'cap' ELSE rule END AS closed_by
FROM timed
