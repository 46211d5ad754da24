-- events per (channel, event), and how many carry no send id
SELECT channel, event, send_id IS NULL AS unmatched, COUNT(*) FROM delivery_events GROUP BY channel, event, send_id IS NULL
