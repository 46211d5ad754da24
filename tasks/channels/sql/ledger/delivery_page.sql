-- one page of a send's rows that have a delivery outcome, in customer_id order after :after (keyset paging)
SELECT customer_id, delivery, delivery_type, delivery_detail, delivery_at FROM sends
WHERE campaign = :campaign AND date = :date AND channel = :channel AND customer_id > :after AND delivery IS NOT NULL
ORDER BY customer_id
LIMIT :page_rows
