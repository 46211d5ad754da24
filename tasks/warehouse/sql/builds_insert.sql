INSERT INTO ${builds} (table_name, build_id, run_date, staging_table, status, created_at, mode, window_start)
VALUES (%(table_name)s, %(build_id)s, %(run_date)s, %(staging_table)s, 'staging', %(now)s, %(mode)s, %(window_start)s)
