-- state -> rows of one shard (a covering index scan)
SELECT state, COUNT(*) FROM sends
WHERE campaign = :campaign AND date = :date AND channel = :channel AND shard = :shard
GROUP BY state
