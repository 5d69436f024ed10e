-- +goose Up
-- Refunds and seller transfers (payouts to Stripe Connect accounts).
-- Every status change of either goes through one guarded function in store.

CREATE TABLE refunds (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id              UUID NOT NULL REFERENCES orders (id),
    status                VARCHAR(16) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    amount                BIGINT NOT NULL CHECK (amount > 0),
    currency              CHAR(3) NOT NULL,
    reason                TEXT NULL,
    -- The PSP's refund id, set once Hyperswitch accepted the refund (we
    -- choose it, derived from this row's id). NULL while pending means the
    -- refund never reached Hyperswitch: an orphan for the reconcile sweep.
    hyperswitch_refund_id VARCHAR(64) NULL,
    error_message         TEXT NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refunds_order_id_idx ON refunds (order_id);
-- At most one refund in flight per order.
CREATE UNIQUE INDEX refunds_one_pending_per_order ON refunds (order_id) WHERE status = 'pending';
CREATE UNIQUE INDEX refunds_hyperswitch_refund_id_key ON refunds (hyperswitch_refund_id) WHERE hyperswitch_refund_id IS NOT NULL;
CREATE INDEX refunds_pending_created_at_idx ON refunds (created_at) WHERE status = 'pending';

CREATE TABLE seller_transfers (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id           UUID NOT NULL REFERENCES orders (id),
    seller_id          UUID NOT NULL REFERENCES users (id),
    amount             BIGINT NOT NULL CHECK (amount >= 0), -- paid to the seller, minor units
    platform_fee       BIGINT NOT NULL CHECK (platform_fee >= 0),
    currency           CHAR(3) NOT NULL,
    status             VARCHAR(24) NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'completed', 'failed', 'permanently_failed', 'reversal_pending', 'reversed')),
    stripe_transfer_id VARCHAR(255) NULL,
    stripe_reversal_id VARCHAR(255) NULL,
    -- Mirrors of River's retry schedule, for humans.
    retry_count        INTEGER NOT NULL DEFAULT 0,
    next_retry_at      TIMESTAMPTZ NULL,
    error_message      TEXT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (order_id, seller_id)
);
CREATE INDEX seller_transfers_status_idx ON seller_transfers (status, updated_at);

-- +goose Down
DROP TABLE seller_transfers;
DROP TABLE refunds;
