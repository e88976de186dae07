-- no_shows(ticket_type, tickets, no_shows)
-- Valid tickets (whose latest event is `issued`) by type, and those whose
-- badge has no gate `in` scan at all.
CREATE VIEW no_shows AS
WITH latest AS (
    SELECT ticket_id,
           last_value(action ORDER BY ts, event_id) AS action,
           last_value(ticket_type ORDER BY ts, event_id) AS ticket_type,
           last_value(badge ORDER BY ts, event_id) AS badge
    FROM tickets GROUP BY ticket_id
), entered AS (
    SELECT DISTINCT badge FROM scans WHERE zone_kind = 'gate' AND direction = 'in'
)
SELECT l.ticket_type,
       count(*) AS tickets,
       sum(CASE WHEN e.badge IS NULL THEN 1 ELSE 0 END) AS no_shows
FROM latest l LEFT JOIN entered e ON e.badge = l.badge
WHERE l.action = 'issued'
GROUP BY l.ticket_type
