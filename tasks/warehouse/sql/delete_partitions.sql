-- Incremental build: the partitions it rebuilds go from the build's staging table (never the published
-- one): every key from the window's first partition on (YYYY-MM or YYYY-MM-DD text orders like the days).
DELETE FROM ${staging} WHERE ${key} >= %(first_partition)s
