-- One message's delivery outcome, one row per call (Tx.execute_each), kept only when it beats the row's current
-- one: a final bad outcome (:bad = 1: a hard bounce, a complaint) beats any other, then the later event time,
-- then the higher :rank at the same time (tasks/channels/delivery.py RANKS; the CASE below is the same table).
-- Applying an outcome again changes nothing: it does not beat itself.
UPDATE sends SET delivery = :outcome, delivery_type = :kind, delivery_detail = :detail, delivery_at = :at
WHERE campaign = :campaign AND date = :date AND channel = :channel AND customer_id = :cid
    AND (delivery IS NULL OR (:bad, :at, :rank) > (
        CASE WHEN delivery = 'complained' OR (delivery = 'bounced' AND delivery_type = 'hard') THEN 1 ELSE 0 END,
        delivery_at,
        CASE delivery WHEN 'deferred' THEN 0 WHEN 'delivered' THEN 1 WHEN 'bounced' THEN 3
            WHEN 'complained' THEN 4 ELSE 2 END))
