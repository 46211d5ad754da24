SELECT DISTINCT shards FROM send_seeds WHERE campaign = :campaign AND date = :date AND channel = :channel
