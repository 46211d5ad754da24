SELECT table_name, build_id FROM ${builds} WHERE table_name IN (UPPER(%(table)s), UPPER(%(staging)s))
