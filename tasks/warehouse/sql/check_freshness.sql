-- The newest value of the source's timestamp column (before the CTAS: a stale source fails fast),
-- and how many values there are (fakesnow 0.12.1 reads a NULL TIMESTAMP back as 1970-01-01).
SELECT MAX(${column}), COUNT(${column}) FROM ${source}
