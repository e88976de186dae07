-- pole_moves(badge, local_day, from_pole, to_pole, moved_at)
-- One row per move: two consecutive scans of a badge on one local day,
-- among its scans that carry a pole (pole entrances and stands), whose poles
-- differ; `moved_at` is the second scan's time. The server computes it with
-- the walk in ../pole_moves.rs; this is the readable rule its test checks it
-- against.
CREATE VIEW pole_moves AS
WITH seq AS (
    SELECT badge, local_day, ts, pole_id,
           LAG(pole_id) OVER (PARTITION BY badge, local_day ORDER BY ts, event_id) AS prev_pole
    FROM scans
    WHERE pole_id IS NOT NULL
)
SELECT badge, local_day, prev_pole AS from_pole, pole_id AS to_pole, ts AS moved_at
FROM seq
WHERE prev_pole IS NOT NULL AND prev_pole <> pole_id
