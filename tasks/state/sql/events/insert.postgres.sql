-- the batch COPYed into delivery_events_in, in arrival order; an event already stored (same dedupe_key, also
-- twice in one batch) is skipped
INSERT INTO delivery_events (dedupe_key, provider, channel, send_id, send_key, customer_id, event, provider_event,
                             bounce_type, bounce_classification, reason, error_code, provider_message_id, address,
                             event_at, received_at)
SELECT dedupe_key, provider, channel, send_id, send_key, customer_id, event, provider_event, bounce_type,
       bounce_classification, reason, error_code, provider_message_id, address, event_at, received_at
FROM delivery_events_in ORDER BY n
ON CONFLICT DO NOTHING
