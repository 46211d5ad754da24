-- The rows of one send, replaced by its next load in the same transaction.
DELETE FROM ${table}
WHERE campaign = %(campaign)s AND date = %(date)s AND channel = %(channel)s AND segment = %(segment)s
