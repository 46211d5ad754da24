-- campaign_sends' delivery columns from the ledger's outcomes staged in ${staging} (every segment's row of the
-- message: the ledger's outcome is the message's, whichever segment exported it)
UPDATE ${table} AS t SET delivery = s.delivery, delivery_type = s.delivery_type, delivery_detail = s.delivery_detail,
    delivery_at = s.delivery_at
FROM ${staging} AS s
WHERE t.campaign = s.campaign AND t.date = s.date AND t.channel = s.channel AND t.customer_id = s.customer_id
