SELECT dedupe_key FROM delivery_events WHERE dedupe_key IN (SELECT value FROM json_each(:keys))
