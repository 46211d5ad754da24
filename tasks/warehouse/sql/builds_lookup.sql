-- dropped as a boolean: fakesnow 0.12.1 reads a NULL TIMESTAMP_NTZ back as 1970-01-01
SELECT table_name, build_id, staging_table, status, created_at, published_at, dropped_at IS NOT NULL, mode
FROM ${builds}
WHERE build_id = %(build_id)s
