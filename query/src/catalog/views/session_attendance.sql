-- session_attendance(session_id, room_id, title, kind, starts_at, ends_at, attendees, capacity, fill_ratio)
-- Every session of the programme, with the distinct badges scanned `in` at
-- its room from 15 minutes before the start until (not including) the end.
CREATE VIEW session_attendance AS
WITH present AS (
    SELECT s.session_id, sc.badge
    FROM sessions s
    JOIN scans sc
      ON sc.room_id = s.room_id
     AND sc.zone_kind = 'room'
     AND sc.direction = 'in'
     AND sc.ts >= s.starts_at - INTERVAL '15 minutes'
     AND sc.ts < s.ends_at
), counted AS (
    SELECT session_id, count(DISTINCT badge) AS attendees FROM present GROUP BY session_id
)
SELECT s.session_id, s.room_id, s.title, s.kind, s.starts_at, s.ends_at,
       coalesce(c.attendees, 0) AS attendees,
       CAST(r.capacity AS BIGINT) AS capacity,
       CAST(coalesce(c.attendees, 0) AS DOUBLE) / CAST(nullif(r.capacity, 0) AS DOUBLE) AS fill_ratio
FROM sessions s
JOIN rooms r ON r.room_id = s.room_id
LEFT JOIN counted c ON c.session_id = s.session_id
