-- Each message's delivery outcome in one statement (Tx.execute_each binds the columns as parallel arrays; the
-- caller sends at most one outcome per message), kept only when it beats the row's current one: see
-- apply_delivery.sql for the order (tasks/channels/delivery.py RANKS; the CASE below is the same table).
UPDATE sends SET delivery = u.outcome, delivery_type = u.kind, delivery_detail = u.detail, delivery_at = u.at
FROM unnest(:campaign::text[], :date::text[], :cid::text[], :outcome::text[], :kind::text[], :detail::text[],
            :at::float8[], :bad::int[], :rank::int[]) AS u(campaign, date, cid, outcome, kind, detail, at, bad, rank)
WHERE sends.campaign = u.campaign AND sends.date = u.date AND sends.channel = :channel AND sends.customer_id = u.cid
    AND (sends.delivery IS NULL OR (u.bad, u.at, u.rank) > (
        CASE WHEN sends.delivery = 'complained' OR (sends.delivery = 'bounced' AND sends.delivery_type = 'hard')
            THEN 1 ELSE 0 END,
        sends.delivery_at,
        CASE sends.delivery WHEN 'deferred' THEN 0 WHEN 'delivered' THEN 1 WHEN 'bounced' THEN 3
            WHEN 'complained' THEN 4 ELSE 2 END))
