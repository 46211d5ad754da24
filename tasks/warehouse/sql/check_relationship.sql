-- Rows whose non-null `column` has no match in `to_table`.`to_column`.
SELECT COUNT(*)
FROM ${table} AS s
WHERE s.${column} IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ${to_table} AS r WHERE r.${to_column} = s.${column})
