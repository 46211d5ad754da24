-- one pending row per new recipient, run for each :customer_id in bulk (Tx.insert_each); a recipient already in
-- the ledger is left as it is
INSERT INTO sends (campaign, date, channel, customer_id, shard, state, created_at, updated_at)
VALUES (:campaign, :date, :channel, :customer_id, :shard, 'pending', :now, :now)
ON CONFLICT DO NOTHING
