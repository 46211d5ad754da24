-- Deployments from before incremental builds have the builds table without this column.
ALTER TABLE ${builds} ADD COLUMN IF NOT EXISTS mode VARCHAR
