-- pole_flows(local_day, from_pole, to_pole, moves, visitors)
-- The moves of `pole_moves` (two consecutive scans of a badge on one local
-- day, among its scans that carry a pole, whose poles differ) counted by
-- day and pair of poles, with the distinct badges that made them.
CREATE VIEW pole_flows AS
SELECT local_day, from_pole, to_pole, count(*) AS moves, count(DISTINCT badge) AS visitors
FROM pole_moves
GROUP BY local_day, from_pole, to_pole
