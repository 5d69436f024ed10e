-- +goose Up
-- An invalid-signature delivery keeps a bounded prefix of its body (anyone
-- can send one: storing 64 KB each for 90 days fills the disk), with the
-- whole body's SHA-256 and length for forensics.
ALTER TABLE hyperswitch_webhook_log ADD COLUMN payload_sha256 CHAR(64) NULL;
ALTER TABLE hyperswitch_webhook_log ADD COLUMN payload_bytes INTEGER NULL CHECK (payload_bytes >= 0);

-- +goose Down
ALTER TABLE hyperswitch_webhook_log DROP COLUMN payload_bytes;
ALTER TABLE hyperswitch_webhook_log DROP COLUMN payload_sha256;
