-- one pending row per new recipient, positional parameters (executemany of tuples in one transaction:
-- campaign, date, channel, customer_id, shard, now, now); a recipient already in the ledger is left as it is
INSERT INTO sends (campaign, date, channel, customer_id, shard, state, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)
ON CONFLICT DO NOTHING
