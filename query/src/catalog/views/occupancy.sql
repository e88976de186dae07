-- occupancy(level, zone_id, at, inside)
-- Every 15 minutes from opening to closing (both included) of each day: for
-- the venue (its gates) and each room, the `in` minus `out` scans of that
-- local day before `at`, never below 0; for a stand, the visits of
-- stand_visits entered and not yet left before `at`; for a pole, the sum over
-- its stands (pole entrances count entries, not exits). Each day starts
-- empty: whoever was still inside was counted out at the previous closing.
CREATE VIEW occupancy AS
WITH zones AS (
    SELECT DISTINCT
           CASE WHEN zone_kind = 'gate' THEN 'venue' ELSE zone_kind END AS level,
           CASE WHEN zone_kind = 'gate' THEN (SELECT venue_id FROM venue) ELSE zone_id END AS zone_id
    FROM scanners
    WHERE zone_kind IN ('gate', 'stand', 'room')
), grid AS (
    SELECT local_day, at, (CAST(at AS BIGINT) - CAST(opens_at AS BIGINT)) / 900000 AS k
    FROM (
        SELECT local_day, opens_at,
               arrow_cast(unnest(generate_series(opens_at, closes_at, INTERVAL '15 minutes')),
                          'Timestamp(Millisecond, Some("UTC"))') AS at
        FROM opening_hours
    ) g
), moves AS (
    -- Gates and rooms: their `in` and `out` scans.
    SELECT s.local_day,
           CASE WHEN s.zone_kind = 'gate' THEN 'venue' ELSE s.zone_kind END AS level,
           CASE WHEN s.zone_kind = 'gate' THEN (SELECT venue_id FROM venue) ELSE s.zone_id END AS zone_id,
           s.ts,
           CASE WHEN s.direction = 'in' THEN 1 ELSE -1 END AS delta
    FROM scans s
    WHERE s.zone_kind IN ('gate', 'room')
    UNION ALL
    -- Stands: each visit enters at `entered_at` and leaves at `left_at`,
    -- so a missing out-scan does not keep a visitor at the stand all day.
    SELECT local_day, 'stand', stand_id, entered_at, 1 FROM stand_visits
    UNION ALL
    SELECT local_day, 'stand', stand_id, left_at, -1 FROM stand_visits
), bucketed AS (
    SELECT m.local_day, m.level, m.zone_id, m.delta,
           -- The first step that sees the move: the first `at` after it.
           CASE WHEN m.ts < o.opens_at THEN 0
                ELSE (CAST(m.ts AS BIGINT) - CAST(o.opens_at AS BIGINT)) / 900000 + 1 END AS k
    FROM moves m JOIN opening_hours o ON o.local_day = m.local_day
), steps AS (
    SELECT local_day, level, zone_id, k, sum(delta) AS delta
    FROM bucketed GROUP BY local_day, level, zone_id, k
), filled AS (
    SELECT z.level, z.zone_id, g.local_day, g.k, g.at, coalesce(st.delta, 0) AS delta
    FROM grid g CROSS JOIN zones z
    LEFT JOIN steps st ON st.local_day = g.local_day AND st.level = z.level
                      AND st.zone_id = z.zone_id AND st.k = g.k
), zone_occupancy AS (
    SELECT level, zone_id, at,
           greatest(0, sum(delta) OVER (PARTITION BY level, zone_id, local_day ORDER BY k
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS inside
    FROM filled
)
SELECT level, zone_id, at, inside FROM zone_occupancy
UNION ALL
SELECT 'pole' AS level, st.pole_id AS zone_id, o.at, sum(o.inside) AS inside
FROM zone_occupancy o JOIN stands st ON st.stand_id = o.zone_id
WHERE o.level = 'stand'
GROUP BY st.pole_id, o.at
