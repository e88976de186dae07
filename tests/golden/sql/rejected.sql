SELECT code, event_id FROM rejected ORDER BY code, event_id
