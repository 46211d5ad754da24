-- One row per recipient of a channel send: its outcome, never its address (customer_id is the join key).
-- first_attempt_at: when the recipient entered the send's ledger, just before its first attempt;
-- last_attempt_at: the ledger row's last change (its final state). Both NULL without an attempt.
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
    loaded_at TIMESTAMP_NTZ
)
