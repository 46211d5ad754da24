-- Snowflake, incremental build: the build starts as a zero-copy clone of the published table (metadata
-- only; the DML that follows on the clone never touches the published table).
CREATE TABLE ${staging} CLONE ${table}
