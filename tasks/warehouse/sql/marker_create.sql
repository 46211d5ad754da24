-- Marker table in the manner of luigi.contrib.postgres: one row per completed step.
CREATE TABLE IF NOT EXISTS ${marker} (
    update_id VARCHAR NOT NULL,
    target_table VARCHAR NOT NULL,
    build_id VARCHAR,
    inserted TIMESTAMP_NTZ DEFAULT CURRENT_TIMESTAMP()
)
