-- :id and :v are parallel arrays (Tx.execute_each)
UPDATE bulk SET v = u.v FROM unnest(:id::text[], :v::text[]) AS u(id, v) WHERE bulk.id = u.id
