SELECT build_id FROM ${marker} WHERE update_id = %(update_id)s
