-- sending -> sent with the provider's message id, one row per call (Tx.execute_each: SQLite cannot join its JSON
-- arrays to the key without scanning the send); also from
-- unknown: a run that lost its lock learns the outcome after another run recovered the row (the truth, and
-- it keeps the row from being re-sent)
UPDATE sends SET state = 'sent', reason = NULL, provider_message_id = :mid, updated_at = :now
WHERE campaign = :campaign AND date = :date AND channel = :channel AND customer_id = :cid
    AND +state IN ('sending', 'unknown')
