-- lock each listed customer on this channel until the transaction ends (a frequency cap counted and claimed
-- under it: two sends claiming one customer take turns), in one order so that two claims never deadlock
SELECT pg_advisory_xact_lock(1668247408, k) FROM (
    SELECT DISTINCT hashtext(cid || '/' || :channel) AS k FROM unnest(:ids::text[]) AS cid ORDER BY k
) AS keys
