SELECT table_name, comment
FROM information_schema.tables
WHERE table_schema = UPPER(%(schema)s) AND table_name IN (UPPER(%(table)s), UPPER(%(staging)s))
