-- The newest build of a table for one run date (the run summary: rows, checks, status).
-- published as a boolean: fakesnow 0.12.1 reads a NULL TIMESTAMP_NTZ back as 1970-01-01
SELECT build_id, status, row_count, checks, published_at IS NOT NULL, mode
FROM ${builds}
WHERE table_name = %(table_name)s AND run_date = %(run_date)s
ORDER BY created_at DESC
LIMIT 1
