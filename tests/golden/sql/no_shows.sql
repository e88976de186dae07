SELECT * FROM no_shows ORDER BY ticket_type
