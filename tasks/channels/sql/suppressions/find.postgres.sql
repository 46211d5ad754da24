-- the entries that suppress any of the listed addresses or customer ids on :channel (or on `all`), oldest first:
-- one query for the recipients of one request
SELECT channel, kind, value, source, reason, created_at FROM suppressions
WHERE channel IN (:channel, 'all') AND (
    (kind = 'address' AND value = ANY(:addresses)) OR (kind = 'customer' AND value = ANY(:ids)))
ORDER BY created_at
