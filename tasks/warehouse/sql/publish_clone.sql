-- Snowflake publish: one statement, atomic. COPY GRANTS keeps the privileges granted on the
-- table being replaced (ownership aside; on the first publish they come from the staging table).
-- The staging table stays as it is: a zero-copy clone shares its storage.
CREATE OR REPLACE TABLE ${table} CLONE ${staging} COPY GRANTS
