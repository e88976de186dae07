-- Every step of both days for the venue: 41 steps a day, 09:00-19:00 UTC on
-- the 14th and 10:00-20:00 UTC on the 15th.
SELECT * FROM occupancy WHERE level = 'venue' ORDER BY at
