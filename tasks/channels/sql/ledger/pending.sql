SELECT customer_id, attempts, next_attempt_at FROM sends
WHERE campaign = :campaign AND date = :date AND channel = :channel AND state = 'pending'
ORDER BY customer_id
