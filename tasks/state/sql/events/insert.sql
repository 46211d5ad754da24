-- a whole batch in one statement: :rows is a JSON array of objects (one per event, in arrival order);
-- an event already stored (same dedupe_key, also twice in one batch) is skipped
INSERT INTO delivery_events (dedupe_key, provider, channel, send_id, send_key, customer_id, event, provider_event,
                             bounce_type, bounce_classification, reason, error_code, provider_message_id, address,
                             event_at, received_at)
SELECT value ->> '$.dedupe_key', value ->> '$.provider', value ->> '$.channel', value ->> '$.send_id',
       value ->> '$.send_key', value ->> '$.customer_id', value ->> '$.event', value ->> '$.provider_event',
       value ->> '$.bounce_type', value ->> '$.bounce_classification', value ->> '$.reason',
       value ->> '$.error_code', value ->> '$.provider_message_id', value ->> '$.address',
       value ->> '$.event_at', value ->> '$.received_at'
FROM json_each(:rows) WHERE true ORDER BY key
ON CONFLICT DO NOTHING
