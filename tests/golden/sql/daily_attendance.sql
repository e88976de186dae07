SELECT * FROM daily_attendance ORDER BY local_day
