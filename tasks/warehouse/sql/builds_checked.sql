-- A build's check results: status validated or failed, with its row count and every check as JSON.
UPDATE ${builds}
SET status = %(status)s, row_count = %(row_count)s, checks = %(checks)s, validated_at = %(now)s
WHERE build_id = %(build_id)s
