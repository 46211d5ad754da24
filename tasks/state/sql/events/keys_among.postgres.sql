SELECT dedupe_key FROM delivery_events WHERE dedupe_key = ANY(:keys)
