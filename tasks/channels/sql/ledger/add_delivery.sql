-- A ledger made before delivery outcomes existed gains their columns (run only when `delivery` is missing, in the
-- transaction that checked it; SQLite has no ADD COLUMN IF NOT EXISTS)
ALTER TABLE sends ADD COLUMN delivery TEXT;
ALTER TABLE sends ADD COLUMN delivery_type TEXT;
ALTER TABLE sends ADD COLUMN delivery_detail TEXT;
ALTER TABLE sends ADD COLUMN delivery_at DOUBLE PRECISION
