-- Every zone has a row at every step.
SELECT level, zone_id, count(*) AS steps, min(at) AS first, max(at) AS last
FROM occupancy GROUP BY level, zone_id ORDER BY level, zone_id
