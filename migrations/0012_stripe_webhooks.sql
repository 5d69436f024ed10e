-- +goose Up
-- Stripe Connect webhooks: each delivery logged (as Hyperswitch's are),
-- valid ones deduplicated on Stripe's event id; account.updated keeps a
-- seller's payouts_enabled (NULL: not reported yet).
ALTER TABLE users ADD COLUMN payouts_enabled BOOLEAN NULL;
CREATE TABLE stripe_webhook_log (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    source_ip         TEXT NULL,
    signature_valid   BOOLEAN NOT NULL,
    event_id          VARCHAR(255) NULL,
    event_type        VARCHAR(128) NULL,
    account_id        VARCHAR(255) NULL,
    payload           TEXT NOT NULL,
    payload_sha256    CHAR(64) NULL,
    payload_bytes     INTEGER NULL,
    processing_result TEXT NOT NULL
);
-- One applied row per event; redeliveries are logged as 'duplicate'.
CREATE UNIQUE INDEX stripe_webhook_log_event_id_key ON stripe_webhook_log (event_id)
    WHERE signature_valid AND processing_result <> 'duplicate';
CREATE INDEX stripe_webhook_log_received_at_idx ON stripe_webhook_log (received_at);

-- +goose Down
DROP TABLE stripe_webhook_log;
ALTER TABLE users DROP COLUMN payouts_enabled;
