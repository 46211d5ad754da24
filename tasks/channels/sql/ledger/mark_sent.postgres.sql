-- sending (or unknown: see mark_sent.sql) -> sent with each recipient's provider message id, in one statement
-- (Tx.execute_each binds :cid and :mid as parallel arrays)
UPDATE sends SET state = 'sent', reason = NULL, provider_message_id = u.mid, updated_at = :now
FROM unnest(:cid::text[], :mid::text[]) AS u(cid, mid)
WHERE sends.campaign = :campaign AND sends.date = :date AND sends.channel = :channel
    AND sends.customer_id = u.cid AND sends.state IN ('sending', 'unknown')
