SELECT * FROM session_attendance ORDER BY starts_at, session_id
