-- one row per call (Tx.execute_each)
UPDATE bulk SET v = :v WHERE id = :id
