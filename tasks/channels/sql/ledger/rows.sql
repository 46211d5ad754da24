SELECT * FROM sends WHERE campaign = :campaign AND date = :date AND channel = :channel ORDER BY customer_id
