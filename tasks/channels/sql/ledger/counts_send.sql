SELECT state, COUNT(*) FROM sends WHERE campaign = :campaign AND date = :date AND channel = :channel
GROUP BY state
