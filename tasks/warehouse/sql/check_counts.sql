-- The staged table's row count and every per-row check (NULL keys, accepted values,
-- expressions) in one scan; the measures are built from validated identifiers and bound values.
SELECT ${measures}
FROM ${table}
