SELECT shards FROM send_shards WHERE campaign = :campaign AND date = :date AND channel = :channel
