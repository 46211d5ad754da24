-- The events of one export's range (after the highest seq already loaded, through the store's last when it
-- started), replaced by its load in the same transaction: an export redone after a crash loads them once.
DELETE FROM ${table} WHERE event_seq > %(after)s AND event_seq <= %(through)s
