-- one row per :id (Tx.insert_each)
INSERT INTO bulk (k, id) VALUES (:k, :id) ON CONFLICT DO NOTHING
