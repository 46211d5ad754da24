-- A ledger made before delivery outcomes existed gains their columns (idempotent: two hosts may both find them
-- missing)
ALTER TABLE sends ADD COLUMN IF NOT EXISTS delivery TEXT;
ALTER TABLE sends ADD COLUMN IF NOT EXISTS delivery_type TEXT;
ALTER TABLE sends ADD COLUMN IF NOT EXISTS delivery_detail TEXT;
ALTER TABLE sends ADD COLUMN IF NOT EXISTS delivery_at DOUBLE PRECISION
