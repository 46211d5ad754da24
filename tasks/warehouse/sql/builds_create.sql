-- Embedded backend only: which build each table holds (fakesnow keeps table comments by
-- name, outside the tables' database, so they cannot move inside the swap transaction).
CREATE TABLE IF NOT EXISTS ${builds} (table_name VARCHAR NOT NULL, build_id VARCHAR)
