-- daily_attendance(local_day, visitors, new_visitors, returning_visitors)
-- From gate `in` scans: the distinct badges of each local day, split by
-- whether that day is the badge's first day with a gate entry. One pass
-- over the scans: the first day is a window over the (day, badge) pairs.
CREATE VIEW daily_attendance AS
WITH entries AS (
    SELECT DISTINCT local_day, badge FROM scans WHERE zone_kind = 'gate' AND direction = 'in'
), marked AS (
    SELECT local_day, local_day = min(local_day) OVER (PARTITION BY badge) AS first_entry
    FROM entries
)
SELECT local_day,
       count(*) AS visitors,
       sum(CASE WHEN first_entry THEN 1 ELSE 0 END) AS new_visitors,
       sum(CASE WHEN first_entry THEN 0 ELSE 1 END) AS returning_visitors
FROM marked
GROUP BY local_day
