-- Number of primary-key values that appear more than once.
SELECT COUNT(*) AS duplicate_keys
FROM (SELECT ${key_columns} FROM ${table} GROUP BY ${key_columns} HAVING COUNT(*) > 1) AS d
