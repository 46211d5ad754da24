SELECT COUNT(*) FROM ${table}
