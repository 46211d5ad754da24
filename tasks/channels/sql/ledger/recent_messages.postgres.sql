-- customer_id -> messages to each listed customer on this channel since :since, in every other send:
-- what a frequency cap counts (`sending`, `sent` and `unknown` may each have reached the customer).
-- Served by the index sends_customer_channel (customer_id, channel).
SELECT customer_id, COUNT(*) FROM sends
WHERE customer_id = ANY(:ids) AND channel = :channel AND updated_at >= :since
    AND state IN ('sending', 'sent', 'unknown') AND NOT (campaign = :campaign AND date = :date)
GROUP BY customer_id
