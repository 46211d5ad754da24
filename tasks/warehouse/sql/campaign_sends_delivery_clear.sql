-- The staging table of a delivery refresh is new and empty; its load's delete step clears it all the same
DELETE FROM ${table}
