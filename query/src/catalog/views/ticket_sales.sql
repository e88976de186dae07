-- ticket_sales(local_day, ticket_type, channel, issued, cancelled, revenue)
-- Ticket events by the local day they happened on; revenue is the price of
-- the issued tickets minus that of the cancelled ones (refunds).
CREATE VIEW ticket_sales AS
SELECT local_day, ticket_type, channel,
       sum(CASE WHEN action = 'issued' THEN 1 ELSE 0 END) AS issued,
       sum(CASE WHEN action = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
       sum(CASE WHEN action = 'issued' THEN price ELSE -price END) AS revenue
FROM tickets
GROUP BY local_day, ticket_type, channel
