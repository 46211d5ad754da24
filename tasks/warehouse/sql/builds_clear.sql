DELETE FROM ${builds} WHERE table_name = UPPER(%(table_name)s)
