SELECT customer_id, state FROM sends WHERE campaign = :campaign AND date = :date AND channel = :channel
