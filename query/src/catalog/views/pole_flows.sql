-- pole_flows(local_day, from_pole, to_pole, moves, visitors)
-- A move is two consecutive scans of a badge on one local day, among its
-- scans that carry a pole (pole entrances and stands), whose poles differ.
CREATE VIEW pole_flows AS
WITH seq AS (
    SELECT local_day, badge, pole_id,
           LAG(pole_id) OVER (PARTITION BY badge, local_day ORDER BY ts, event_id) AS prev_pole
    FROM scans
    WHERE pole_id IS NOT NULL
)
SELECT local_day, prev_pole AS from_pole, pole_id AS to_pole,
       count(*) AS moves, count(DISTINCT badge) AS visitors
FROM seq
WHERE prev_pole IS NOT NULL AND prev_pole <> pole_id
GROUP BY local_day, prev_pole, pole_id
