-- One row per delivery event a provider reported (SendGrid's Event Webhook, Twilio's status callbacks, the demo
-- outbox's), never an address: send_id (campaign/date/channel/customer_id) and customer_id join to
-- campaign_sends. event_seq is the event store's sequence number: the export loads every event after the highest
-- one already here. provider_event_id: SendGrid's sg_event_id (Twilio: MessageSid:MessageStatus).
CREATE TABLE IF NOT EXISTS ${table} (
    event_seq BIGINT NOT NULL,
    send_id VARCHAR,
    campaign VARCHAR,
    date DATE,
    channel VARCHAR NOT NULL,
    customer_id VARCHAR,
    provider VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    provider_event VARCHAR NOT NULL,
    event_at TIMESTAMP_NTZ NOT NULL,
    received_at TIMESTAMP_NTZ NOT NULL,
    provider_event_id VARCHAR NOT NULL,
    provider_message_id VARCHAR,
    bounce_type VARCHAR,
    bounce_classification VARCHAR,
    reason VARCHAR,
    error_code VARCHAR,
    loaded_at TIMESTAMP_NTZ
)
