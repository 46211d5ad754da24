UPDATE ${builds} SET status = 'published', published_at = %(now)s WHERE build_id = %(build_id)s
