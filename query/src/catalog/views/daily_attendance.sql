-- daily_attendance(local_day, visitors, new_visitors, returning_visitors)
-- From gate `in` scans: the distinct badges of each local day, split by
-- whether that day is the badge's first day with a gate entry.
CREATE VIEW daily_attendance AS
WITH entries AS (
    SELECT DISTINCT local_day, badge FROM scans WHERE zone_kind = 'gate' AND direction = 'in'
), firsts AS (
    SELECT badge, min(local_day) AS first_day FROM entries GROUP BY badge
)
SELECT e.local_day,
       count(*) AS visitors,
       sum(CASE WHEN e.local_day = f.first_day THEN 1 ELSE 0 END) AS new_visitors,
       sum(CASE WHEN e.local_day > f.first_day THEN 1 ELSE 0 END) AS returning_visitors
FROM entries e JOIN firsts f ON f.badge = e.badge
GROUP BY e.local_day
