SELECT COUNT(*) FROM information_schema.tables
WHERE table_schema = UPPER(%(schema)s) AND table_name = UPPER(%(table)s)
