SELECT seq, dedupe_key, provider, channel, send_id, send_key, customer_id, event, provider_event, bounce_type,
       bounce_classification, reason, error_code, provider_message_id, address, event_at, received_at
FROM delivery_events WHERE send_key = :send_key AND seq > :after ORDER BY seq LIMIT :limit
