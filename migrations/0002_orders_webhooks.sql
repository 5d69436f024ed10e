-- +goose Up
-- Tracks (the tracks issue extends them with storage), orders and their
-- items, idempotency keys for POST /v1/orders, and the Hyperswitch webhook
-- forensic log with its event dedupe table.

CREATE TABLE tracks (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    UUID NOT NULL REFERENCES users (id),
    title       TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    price_cents BIGINT NOT NULL CHECK (price_cents > 0),
    currency    CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ NULL
);
CREATE INDEX tracks_owner_id_idx ON tracks (owner_id);

CREATE TABLE orders (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    buyer_id       UUID NOT NULL REFERENCES users (id),
    status         VARCHAR(16) NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'completed', 'failed', 'cancelled', 'refund_pending', 'refunded')),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    currency       CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Merchant-chosen Hyperswitch payment id, derived from the order id.
    payment_id     VARCHAR(64) NOT NULL,
    payment_status VARCHAR(32) NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ NULL
);
CREATE UNIQUE INDEX orders_payment_id_key ON orders (payment_id);
CREATE INDEX orders_buyer_id_idx ON orders (buyer_id, created_at DESC);
-- The reconcile sweep scans pending orders by age.
CREATE INDEX orders_pending_created_at_idx ON orders (created_at) WHERE status = 'pending';

CREATE TABLE order_items (
    id        UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id  UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    track_id  UUID NOT NULL REFERENCES tracks (id),
    seller_id UUID NOT NULL REFERENCES users (id),
    amount    BIGINT NOT NULL CHECK (amount > 0),
    currency  CHAR(3) NOT NULL,
    UNIQUE (order_id, track_id)
);
CREATE INDEX order_items_track_id_idx ON order_items (track_id);

-- One row per (user, Idempotency-Key). The first request claims it with a
-- short lease; its final answer is stored and replayed to repeats.
CREATE TABLE idempotency_keys (
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             VARCHAR(255) NOT NULL,
    request_hash    BYTEA NOT NULL,
    order_id        UUID NULL REFERENCES orders (id),
    response_status INTEGER NULL,
    response_body   JSONB NULL,
    locked_until    TIMESTAMPTZ NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Every delivery to POST /webhooks/hyperswitch, valid or not.
CREATE TABLE hyperswitch_webhook_log (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    request_id        TEXT NOT NULL,
    source_ip         TEXT NULL,
    user_agent        TEXT NULL,
    signature_valid   BOOLEAN NOT NULL,
    event_id          TEXT NULL,
    event_type        TEXT NULL,
    payload           TEXT NOT NULL, -- '' when the body was not valid UTF-8
    processing_result TEXT NOT NULL, -- ok | error: <msg> | signature_invalid | skipped | queued
    processed_at      TIMESTAMPTZ NULL
);
CREATE INDEX hyperswitch_webhook_log_invalid_idx ON hyperswitch_webhook_log (received_at DESC) WHERE signature_valid = false;
CREATE INDEX hyperswitch_webhook_log_received_at_idx ON hyperswitch_webhook_log (received_at);

-- Dedupe on Hyperswitch's event_id: a redelivery finds its event here and
-- is not processed again, however long after River forgot the job.
CREATE TABLE hyperswitch_events (
    event_id    VARCHAR(128) PRIMARY KEY,
    event_type  TEXT NOT NULL,
    log_id      UUID NULL, -- no FK: log retention deletes old rows
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX hyperswitch_events_received_at_idx ON hyperswitch_events (received_at);

-- +goose Down
DROP TABLE hyperswitch_events;
DROP TABLE hyperswitch_webhook_log;
DROP TABLE idempotency_keys;
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE tracks;
