-- one page of a send's rows in customer_id order, after :after (keyset paging on the primary key: each page is
-- its own short transaction, and no page holds more than :page_rows rows)
SELECT * FROM sends WHERE campaign = :campaign AND date = :date AND channel = :channel AND customer_id > :after
ORDER BY customer_id
LIMIT :page_rows
