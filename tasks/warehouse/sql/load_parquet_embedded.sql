-- Embedded only: DuckDB reads the file directly (10M rows in about a second).
INSERT INTO ${table} SELECT * FROM read_parquet(%(path)s)
