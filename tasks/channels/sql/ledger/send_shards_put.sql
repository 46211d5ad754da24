-- the send's shard count, if no run set it yet (the first run's count stands)
INSERT INTO send_shards (campaign, date, channel, shards) VALUES (:campaign, :date, :channel, :shards)
ON CONFLICT (campaign, date, channel) DO NOTHING
