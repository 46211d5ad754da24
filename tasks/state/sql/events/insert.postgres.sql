-- a whole batch in one statement: :rows is a JSON array of objects (one per event, in arrival order);
-- an event already stored (same dedupe_key, also twice in one batch) is skipped
INSERT INTO delivery_events (dedupe_key, provider, channel, send_id, send_key, customer_id, event, provider_event,
                             bounce_type, bounce_classification, reason, error_code, provider_message_id, address,
                             event_at, received_at)
SELECT r.dedupe_key, r.provider, r.channel, r.send_id, r.send_key, r.customer_id, r.event, r.provider_event,
       r.bounce_type, r.bounce_classification, r.reason, r.error_code, r.provider_message_id, r.address,
       r.event_at, r.received_at
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS a(item, n),
     jsonb_to_record(a.item) AS r(
    dedupe_key text, provider text, channel text, send_id text, send_key text, customer_id text, event text,
    provider_event text, bounce_type text, bounce_classification text, reason text, error_code text,
    provider_message_id text, address text, event_at double precision, received_at double precision)
ORDER BY a.n
ON CONFLICT DO NOTHING
