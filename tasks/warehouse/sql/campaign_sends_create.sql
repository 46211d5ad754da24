-- One row per recipient of a channel send: its outcome, never its address (customer_id is the join key).
-- first_attempt_at: when the recipient entered the send's ledger, just before its first attempt;
-- last_attempt_at: the ledger row's last change (its final state). Both NULL without an attempt.
-- delivery*: the latest delivery outcome the provider reported (delivered, deferred, bounced hard/soft with the
-- classification, dropped, complained, undelivered/failed with the Twilio code) and its time; NULL before any.
-- They come last: a table made before them gains them at its end (campaign_sends_add_column.sql).
CREATE TABLE IF NOT EXISTS ${table} (
    campaign VARCHAR NOT NULL,
    date DATE NOT NULL,
    channel VARCHAR NOT NULL,
    segment VARCHAR NOT NULL,
    provider VARCHAR,
    customer_id VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    reason VARCHAR,
    attempts INTEGER,
    provider_message_id VARCHAR,
    first_attempt_at TIMESTAMP_NTZ,
    last_attempt_at TIMESTAMP_NTZ,
    loaded_at TIMESTAMP_NTZ,
    delivery VARCHAR,
    delivery_type VARCHAR,
    delivery_detail VARCHAR,
    delivery_at TIMESTAMP_NTZ
)
