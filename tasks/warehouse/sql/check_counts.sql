-- The staged table's row count and every per-row check (NULL keys, accepted values,
-- expressions) in one scan; the measures are built from validated identifiers, bound values and
-- the spec's expressions (trusted SQL from tables.toml, like the table's SELECT).
SELECT ${measures}
FROM ${table}
