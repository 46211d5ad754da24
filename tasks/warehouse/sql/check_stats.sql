-- Row count and primary-key nulls of a table, in one scan.
SELECT COUNT(*) AS row_count,
       COALESCE(SUM(CASE WHEN ${null_predicate} THEN 1 ELSE 0 END), 0) AS null_rows
FROM ${table}
