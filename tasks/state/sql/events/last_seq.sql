SELECT COALESCE(MAX(seq), 0) FROM delivery_events
