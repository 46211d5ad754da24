-- is any row of this shard pending or sending? (one index probe; a finished shard needs no recovery)
SELECT 1 FROM sends
WHERE campaign = :campaign AND date = :date AND channel = :channel AND shard = :shard
    AND state IN ('pending', 'sending')
LIMIT 1
