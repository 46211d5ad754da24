MERGE INTO ${marker} AS m
USING (SELECT %(update_id)s AS update_id, %(target_table)s AS target_table, %(build_id)s AS build_id) AS s
ON m.update_id = s.update_id
WHEN MATCHED THEN UPDATE SET build_id = s.build_id, target_table = s.target_table, inserted = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN INSERT (update_id, target_table, build_id) VALUES (s.update_id, s.target_table, s.build_id)
