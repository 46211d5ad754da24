-- rows a dead run of this shard left in `sending` (the caller holds the shard's lock) become unknown
UPDATE sends SET state = 'unknown', reason = 'in flight when a previous run stopped', updated_at = :now
WHERE campaign = :campaign AND date = :date AND channel = :channel AND shard = :shard AND state = 'sending'
