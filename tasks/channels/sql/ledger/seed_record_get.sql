SELECT shards, source, recipients FROM send_seeds
WHERE campaign = :campaign AND date = :date AND channel = :channel AND shard = :shard
