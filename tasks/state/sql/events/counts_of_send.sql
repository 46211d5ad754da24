-- events of one send per (event, bounce_type, error_code): the figures of its outcomes and rates
SELECT event, COALESCE(bounce_type, ''), COALESCE(error_code, ''), COUNT(*) FROM delivery_events
WHERE send_key = :send_key GROUP BY event, COALESCE(bounce_type, ''), COALESCE(error_code, '')
