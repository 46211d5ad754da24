-- sending -> sent with the provider's message id, one row per call (executemany in one transaction)
UPDATE sends SET state = 'sent', reason = NULL, provider_message_id = :mid, updated_at = :now
WHERE campaign = :campaign AND date = :date AND channel = :channel AND customer_id = :cid AND +state = 'sending'
