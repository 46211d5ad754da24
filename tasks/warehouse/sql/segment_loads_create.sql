-- One row per LoadSegments run date: counts by outcome, reason and channel (JSON objects as text).
CREATE TABLE IF NOT EXISTS ${table} (
    date DATE NOT NULL,
    input_file VARCHAR,
    rows_read INTEGER,
    valid INTEGER,
    rejected INTEGER,
    blank_lines INTEGER,
    valid_email INTEGER,
    valid_sms INTEGER,
    valid_push INTEGER,
    rejected_by_reason VARCHAR,
    channel_issues_by_reason VARCHAR,
    rejects_file VARCHAR,
    duration_s DOUBLE,
    loaded_at TIMESTAMP_NTZ
)
