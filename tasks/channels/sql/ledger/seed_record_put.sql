INSERT INTO send_seeds (campaign, date, channel, shard, shards, source, recipients, seeded_at)
VALUES (:campaign, :date, :channel, :shard, :shards, :source, :recipients, :now)
ON CONFLICT (campaign, date, channel, shard) DO UPDATE
SET shards = excluded.shards, source = excluded.source, recipients = excluded.recipients, seeded_at = excluded.seeded_at
