SELECT channel, kind, value, source, reason, created_at FROM suppressions ORDER BY channel, kind, value
