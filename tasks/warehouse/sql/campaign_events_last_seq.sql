-- The highest event store seq already exported (0 when none): the next export starts after it.
SELECT COALESCE(MAX(event_seq), 0) FROM ${table}
