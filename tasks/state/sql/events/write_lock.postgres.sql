-- one event writer at a time (until commit): seq values become visible in order, so "seq > last seen" misses none
SELECT pg_advisory_xact_lock(:lock_id)
