-- A validated build never published because a newer build of its table was published first.
UPDATE ${builds} SET status = 'superseded' WHERE build_id = %(build_id)s AND status = 'validated'
