-- The send ledger: one row per recipient of one send (campaign, date, channel), and one row per
-- seeded shard of a send; created idempotently. delivery*: the latest delivery outcome the provider reported
-- (add_delivery.sql adds them to a ledger made before they existed). {table_options} is WITHOUT ROWID on SQLite (the rows live in
-- the primary key's b-tree) and nothing on Postgres.
CREATE TABLE IF NOT EXISTS sends (
    campaign TEXT NOT NULL,
    date TEXT NOT NULL,
    channel TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    unknown_resends INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    provider_message_id TEXT,
    next_attempt_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    delivery TEXT,
    delivery_type TEXT,
    delivery_detail TEXT,
    delivery_at DOUBLE PRECISION,
    PRIMARY KEY (campaign, date, channel, customer_id)
)
{table_options};
-- a shard's rows by state: recovery, the pending check and the counts read it alone (a covering index)
CREATE INDEX IF NOT EXISTS sends_shard_state ON sends (campaign, date, channel, shard, state);
-- one customer's rows across campaigns and dates: the frequency cap's lookup. Not on updated_at: every claim
-- and outcome changes it, and an index on it would be rewritten for each (the cap filters the few rows a
-- customer has instead)
CREATE INDEX IF NOT EXISTS sends_customer_channel ON sends (customer_id, channel);
-- how many shards a send is split into, set once by its first run (before any seeding, in the transaction that
-- checks it), so two hosts starting with different counts cannot both go on
CREATE TABLE IF NOT EXISTS send_shards (
    campaign TEXT NOT NULL,
    date TEXT NOT NULL,
    channel TEXT NOT NULL,
    shards INTEGER NOT NULL,
    PRIMARY KEY (campaign, date, channel)
);
CREATE TABLE IF NOT EXISTS send_seeds (
    campaign TEXT NOT NULL,
    date TEXT NOT NULL,
    channel TEXT NOT NULL,
    shard INTEGER NOT NULL,
    shards INTEGER NOT NULL,
    source TEXT NOT NULL,
    batches INTEGER NOT NULL,
    recipients INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    seeded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (campaign, date, channel, shard)
)
