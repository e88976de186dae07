SELECT * FROM occupancy WHERE level <> 'venue' AND inside > 0 ORDER BY level, zone_id, at
