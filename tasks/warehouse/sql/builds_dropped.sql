UPDATE ${builds} SET dropped_at = %(now)s WHERE build_id = %(build_id)s
