-- The delivery event store (SQLite): one row per provider event, deduplicated by dedupe_key; created idempotently.
-- seq is AUTOINCREMENT: never reused, and SQLite has one writer at a time, so a reader that remembers the last seq
-- it saw finds every event stored after it.
CREATE TABLE IF NOT EXISTS delivery_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    channel TEXT NOT NULL,
    send_id TEXT,
    send_key TEXT,
    customer_id TEXT,
    event TEXT NOT NULL,
    provider_event TEXT NOT NULL,
    bounce_type TEXT,
    bounce_classification TEXT,
    reason TEXT,
    error_code TEXT,
    provider_message_id TEXT,
    address TEXT,
    event_at DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_events_send_key ON delivery_events (send_key, seq);
-- how far each reader of the store got (the seq it handled last): the applier of outcomes and suppressions
-- ('ledger'); a reader that crashed before advancing reads those events again, and its work is idempotent
CREATE TABLE IF NOT EXISTS event_cursors (
    name TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
)
