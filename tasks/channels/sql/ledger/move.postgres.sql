-- move the listed rows that are still in state :expect; returns the ids this statement changed.
-- {assignments} is one of the ledger's fixed SET lists (never user input).
UPDATE sends SET {assignments}, updated_at = :now
WHERE campaign = :campaign AND date = :date AND channel = :channel AND state IN ({expect})
    AND customer_id = ANY(:ids)
RETURNING customer_id
