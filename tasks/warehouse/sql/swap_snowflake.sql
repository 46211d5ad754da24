-- Snowflake: one atomic statement exchanges the two tables (names, data, comments, grants).
ALTER TABLE ${table} SWAP WITH ${staging}
