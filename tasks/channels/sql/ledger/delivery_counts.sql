-- one send's messages by delivery outcome ('' before any event): the figures of status and the run summary
SELECT COALESCE(delivery, ''), COALESCE(delivery_type, ''), COALESCE(delivery_detail, ''), COUNT(*) FROM sends
WHERE campaign = :campaign AND date = :date AND channel = :channel
GROUP BY COALESCE(delivery, ''), COALESCE(delivery_type, ''), COALESCE(delivery_detail, '')
