-- Sends held by their breaker (too many hard bounces, complaints or filtered SMS), and who released them; created
-- idempotently. One row per send (send_key = campaign/date/channel); figures: the breaker's JSON at the trip.
CREATE TABLE IF NOT EXISTS send_holds (
    send_key TEXT PRIMARY KEY,
    held_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    figures TEXT NOT NULL,
    released_at DOUBLE PRECISION,
    released_by TEXT
)
