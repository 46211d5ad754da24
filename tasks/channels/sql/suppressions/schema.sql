-- The suppression store: one row per (channel, kind, value); created idempotently.
-- channel: email, sms, push or all; kind: address (a normalised address) or customer (a customer id).
CREATE TABLE IF NOT EXISTS suppressions (
    channel TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'all')),
    kind TEXT NOT NULL CHECK (kind IN ('address', 'customer')),
    value TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, kind, value)
)
