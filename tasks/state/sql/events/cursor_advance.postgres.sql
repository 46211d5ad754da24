-- move a named reader's cursor forward, never back (two readers may finish out of order)
INSERT INTO event_cursors (name, seq) VALUES (:name, :seq)
ON CONFLICT (name) DO UPDATE SET seq = GREATEST(event_cursors.seq, excluded.seq)
