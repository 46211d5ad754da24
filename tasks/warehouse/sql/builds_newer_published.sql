-- Published builds of this build's table that are newer than it: a later run date, or the same run date
-- staged later. Publishing this one over them would put an older version of the table back.
SELECT COUNT(*)
FROM ${builds} AS newer, ${builds} AS this
WHERE this.build_id = %(build_id)s AND newer.table_name = this.table_name AND newer.status = 'published'
    AND newer.build_id <> this.build_id
    AND (newer.run_date > this.run_date OR (newer.run_date = this.run_date AND newer.created_at > this.created_at))
