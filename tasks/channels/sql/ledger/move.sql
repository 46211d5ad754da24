-- move the listed rows that are still in state :expect; returns the ids this statement changed.
-- `+state`: SQLite must look rows up by the primary key, not scan a shard's rows in the state index.
-- {assignments} is one of the ledger's fixed SET lists (never user input).
UPDATE sends SET {assignments}, updated_at = :now
WHERE campaign = :campaign AND date = :date AND channel = :channel AND +state IN ({expect})
    AND customer_id IN (SELECT value FROM json_each(:ids))
RETURNING customer_id
