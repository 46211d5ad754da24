-- Embedded publish (fakesnow has no CLONE): one statement, atomic in DuckDB.
CREATE OR REPLACE TABLE ${table} AS SELECT * FROM ${staging}
