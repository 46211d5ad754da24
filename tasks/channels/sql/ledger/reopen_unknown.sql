-- unknown rows never re-sent go back to pending, once each
UPDATE sends SET state = 'pending', unknown_resends = unknown_resends + 1, attempts = 0, next_attempt_at = NULL,
    updated_at = :now
WHERE campaign = :campaign AND date = :date AND channel = :channel AND shard = :shard AND state = 'unknown'
    AND unknown_resends = 0
