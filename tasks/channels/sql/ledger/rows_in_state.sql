-- the rows of one send in one state (reconcile's unknowns: few, found through sends_shard_state)
SELECT * FROM sends WHERE campaign = :campaign AND date = :date AND channel = :channel AND state = :state
ORDER BY customer_id
