-- a person has looked: the send goes on with its breaker off (the first release is the one kept)
UPDATE send_holds SET released_at = :released_at, released_by = :released_by
WHERE send_key = :send_key AND released_at IS NULL
