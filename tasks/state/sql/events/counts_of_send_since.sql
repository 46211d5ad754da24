-- events of one send stored after :after per (event, bounce_type, error_code), with the highest seq of each group:
-- a reader that keeps the highest seq it saw counts each event once (the breaker's incremental read)
SELECT event, COALESCE(bounce_type, ''), COALESCE(error_code, ''), COUNT(*), MAX(seq) FROM delivery_events
WHERE send_key = :send_key AND seq > :after GROUP BY event, COALESCE(bounce_type, ''), COALESCE(error_code, '')
