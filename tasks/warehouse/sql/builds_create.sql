-- One row per build of every table: where it was staged, its checks and what became of it.
-- mode: full or incremental; window_start: the first day an incremental table's SELECT read from.
-- The build id lives here (a COMMENT ON cannot erase it); analysts can query the history.
CREATE TABLE IF NOT EXISTS ${builds} (
    table_name VARCHAR NOT NULL,
    build_id VARCHAR NOT NULL,
    run_date DATE,
    staging_table VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    row_count INTEGER,
    checks VARCHAR,
    created_at TIMESTAMP_NTZ,
    validated_at TIMESTAMP_NTZ,
    published_at TIMESTAMP_NTZ,
    dropped_at TIMESTAMP_NTZ,
    mode VARCHAR,
    window_start DATE
)
