-- A plain INSERT after builds_clear: fakesnow's MERGE writes to another database, which a
-- DuckDB transaction that already changed the tables refuses.
INSERT INTO ${builds} (table_name, build_id) VALUES (UPPER(%(table_name)s), %(build_id)s)
