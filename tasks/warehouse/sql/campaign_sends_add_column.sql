-- A campaign_sends table made before a column existed gains it (idempotent; ${column} and ${type} come from the
-- package's own list, tasks/campaign/results.py ADDED_SENDS_COLUMNS)
ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${column} ${type}
