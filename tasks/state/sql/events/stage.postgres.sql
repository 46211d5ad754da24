-- this connection's staging table for one batch (COPY lands here; emptied at each commit)
CREATE TEMPORARY TABLE IF NOT EXISTS delivery_events_in (
    n BIGSERIAL, dedupe_key TEXT, provider TEXT, channel TEXT, send_id TEXT, send_key TEXT, customer_id TEXT,
    event TEXT, provider_event TEXT, bounce_type TEXT, bounce_classification TEXT, reason TEXT, error_code TEXT,
    provider_message_id TEXT, address TEXT, event_at DOUBLE PRECISION, received_at DOUBLE PRECISION
) ON COMMIT DELETE ROWS
