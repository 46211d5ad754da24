-- Upload one load file to the table's own stage, unchanged (a Parquet file is compressed already), so
-- copy_load_file can name exactly this file; file_url is a quoted literal made by sql.string_literal.
PUT ${file_url} @${schema}.%${table_name} OVERWRITE = TRUE AUTO_COMPRESS = FALSE
