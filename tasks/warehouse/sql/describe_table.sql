-- A table's columns (names and types) without its rows.
SELECT * FROM ${table} LIMIT 0
