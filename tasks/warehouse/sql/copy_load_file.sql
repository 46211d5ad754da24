-- Load exactly one staged file (another load into the same table may have staged its own meanwhile).
COPY INTO ${schema}.${table_name} FROM @${schema}.%${table_name} FILES = (${file_name})
FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE
