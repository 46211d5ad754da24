-- the ids were COPYed into the temporary table seed_ids of this transaction
INSERT INTO sends (campaign, date, channel, customer_id, shard, state, created_at, updated_at)
SELECT :campaign, :date, :channel, customer_id, :shard, 'pending', :now, :now FROM seed_ids
ON CONFLICT DO NOTHING
