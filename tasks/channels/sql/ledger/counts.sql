SELECT state, COUNT(*) FROM sends
WHERE campaign = :campaign AND date = :date AND channel = :channel AND (:shard < 0 OR shard = :shard)
GROUP BY state
