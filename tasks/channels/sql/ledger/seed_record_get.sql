SELECT source, batches, recipients, complete FROM send_seeds
WHERE campaign = :campaign AND date = :date AND channel = :channel AND shard = :shard
