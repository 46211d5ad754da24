-- is the send's run lock (a session advisory lock) still held by the backend :pid? Once that session has
-- ended (server restart, idle-session timeout, a cut connection) the lock is free for another host
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = :pid)
