SELECT * FROM ticket_sales ORDER BY local_day, ticket_type, channel
