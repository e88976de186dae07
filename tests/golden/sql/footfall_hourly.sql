SELECT * FROM footfall_hourly ORDER BY local_day, local_hour, level, zone_id
