-- how far seeding from :source got: the first :batches source batches (:recipients ids) are in the ledger;
-- :complete = 1 once every batch is (a re-run of the same source then skips seeding)
INSERT INTO send_seeds (campaign, date, channel, shard, shards, source, batches, recipients, complete, seeded_at)
VALUES (:campaign, :date, :channel, :shard, :shards, :source, :batches, :recipients, :complete, :now)
ON CONFLICT (campaign, date, channel, shard) DO UPDATE
SET shards = excluded.shards, source = excluded.source, batches = excluded.batches,
    recipients = excluded.recipients, complete = excluded.complete, seeded_at = excluded.seeded_at
