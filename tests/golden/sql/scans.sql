-- The scans table after dedup: each event_id once, local day and hour on
-- the venue's clock either side of the UTC+1 -> UTC+0 switch.
SELECT event_id, ts, local_day, local_hour, badge, zone_kind, zone_id, pole_id, direction
FROM scans ORDER BY ts, event_id
