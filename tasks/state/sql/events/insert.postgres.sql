-- a whole batch in one statement: one array per column, in arrival order; an event already stored (same
-- dedupe_key, also twice in one batch) is skipped
INSERT INTO delivery_events (dedupe_key, provider, channel, send_id, send_key, customer_id, event, provider_event,
                             bounce_type, bounce_classification, reason, error_code, provider_message_id, address,
                             event_at, received_at)
SELECT r.dedupe_key, r.provider, r.channel, r.send_id, r.send_key, r.customer_id, r.event, r.provider_event,
       r.bounce_type, r.bounce_classification, r.reason, r.error_code, r.provider_message_id, r.address,
       r.event_at, r.received_at
FROM unnest(CAST(:dedupe_key AS text[]), CAST(:provider AS text[]), CAST(:channel AS text[]),
            CAST(:send_id AS text[]), CAST(:send_key AS text[]), CAST(:customer_id AS text[]),
            CAST(:event AS text[]), CAST(:provider_event AS text[]), CAST(:bounce_type AS text[]),
            CAST(:bounce_classification AS text[]), CAST(:reason AS text[]), CAST(:error_code AS text[]),
            CAST(:provider_message_id AS text[]), CAST(:address AS text[]), CAST(:event_at AS float8[]),
            CAST(:received_at AS float8[])) WITH ORDINALITY AS r(
    dedupe_key, provider, channel, send_id, send_key, customer_id, event, provider_event, bounce_type,
    bounce_classification, reason, error_code, provider_message_id, address, event_at, received_at, n)
ORDER BY r.n
ON CONFLICT DO NOTHING
