COPY INTO ${schema}.${table_name} FROM @${schema}.%${table_name}
FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE
