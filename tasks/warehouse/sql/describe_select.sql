-- The SELECT's columns (names and types) without its rows: compared with the published table's.
SELECT * FROM (
${select}
) AS q LIMIT 0
