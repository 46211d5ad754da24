-- Row counts of the table's earlier validated builds, newest first (row_count_anomaly).
SELECT row_count
FROM ${builds}
WHERE table_name = %(table_name)s AND status IN ('validated', 'published') AND build_id <> %(build_id)s
ORDER BY validated_at DESC
LIMIT ${limit}
