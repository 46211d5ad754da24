-- one row per id COPYed into bulk_values (Tx.insert_each)
INSERT INTO bulk (k, id) SELECT :k, value FROM bulk_values ON CONFLICT DO NOTHING
