-- one pending row per new recipient: the ids were COPYed into the temporary table bulk_values of this
-- transaction (Tx.insert_each); a recipient already in the ledger is left as it is
INSERT INTO sends (campaign, date, channel, customer_id, shard, state, created_at, updated_at)
SELECT :campaign, :date, :channel, value, :shard, 'pending', :now, :now FROM bulk_values
ON CONFLICT DO NOTHING
