SELECT * FROM stand_visits ORDER BY badge, entered_at, stand_id
