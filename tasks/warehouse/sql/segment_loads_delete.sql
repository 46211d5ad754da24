-- The row of one LoadSegments date, replaced by its next load in the same transaction.
DELETE FROM ${table} WHERE date = %(date)s
