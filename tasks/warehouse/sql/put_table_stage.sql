-- Upload a local file to the table's own stage (@schema.%table); file_url is a quoted string
-- literal made by sql.string_literal, never raw text.
PUT ${file_url} @${schema}.%${table_name} OVERWRITE = TRUE
