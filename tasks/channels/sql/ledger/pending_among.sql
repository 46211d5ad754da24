-- `+state`: SQLite looks rows up by the primary key, not by scanning the state index
SELECT customer_id, attempts, next_attempt_at FROM sends
WHERE campaign = :campaign AND date = :date AND channel = :channel AND +state = 'pending'
    AND customer_id IN (SELECT value FROM json_each(:ids))
