-- an existing entry keeps its first source and time
INSERT INTO suppressions (channel, kind, value, source, reason, created_at)
VALUES (:channel, :kind, :value, :source, :reason, :created_at)
ON CONFLICT DO NOTHING
