-- The staging table of one refresh of campaign_sends' delivery columns (dropped after it; a unique name per run)
CREATE TABLE IF NOT EXISTS ${table} (
    campaign VARCHAR NOT NULL,
    date DATE NOT NULL,
    channel VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    delivery VARCHAR,
    delivery_type VARCHAR,
    delivery_detail VARCHAR,
    delivery_at TIMESTAMP_NTZ
)
