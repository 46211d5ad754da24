-- record a send's hold once: a second trip (another shard, a rerun) changes nothing, and its caller learns so
INSERT INTO send_holds (send_key, held_at, reason, figures) VALUES (:send_key, :held_at, :reason, :figures)
ON CONFLICT (send_key) DO NOTHING
