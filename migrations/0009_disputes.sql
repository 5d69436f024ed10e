-- +goose Up
-- Disputes (chargebacks) of an order's payment, as Hyperswitch reports
-- them. While one is open the order is disputed: refunds are refused and
-- payouts not yet sent wait. A lost one charges the order back: completed
-- transfers are reversed for the disputed share (reversal_amount; NULL is
-- the whole transfer).
CREATE TABLE disputes (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    dispute_id            VARCHAR(128) NOT NULL UNIQUE, -- Hyperswitch's
    order_id              UUID NOT NULL REFERENCES orders (id),
    amount                BIGINT NOT NULL CHECK (amount >= 0),
    currency              CHAR(3) NOT NULL,
    stage                 VARCHAR(32) NULL,
    status                VARCHAR(16) NOT NULL
                          CHECK (status IN ('opened', 'challenged', 'won', 'lost', 'accepted', 'cancelled', 'expired')),
    reason                TEXT NULL,
    connector_dispute_id  TEXT NULL,
    challenge_required_by TIMESTAMPTZ NULL,
    opened_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at             TIMESTAMPTZ NULL,
    reconciled_at         TIMESTAMPTZ NULL,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX disputes_order_id_idx ON disputes (order_id);
CREATE INDEX disputes_open_idx ON disputes (opened_at) WHERE status IN ('opened', 'challenged');

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'cancelled', 'expired', 'refund_pending', 'refunded', 'disputed', 'charged_back'));

ALTER TABLE seller_transfers ADD COLUMN reversal_amount BIGINT NULL CHECK (reversal_amount > 0);

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    n BIGINT;
BEGIN
    SELECT count(*) INTO n FROM orders WHERE status IN ('disputed', 'charged_back');
    IF n > 0 THEN
        RAISE EXCEPTION 'refusing to revert 0009_disputes: % orders are disputed or charged back, and the disputes table would be lost', n;
    END IF;
    -- A dispute recorded on an order that was not completed (pending,
    -- refunding, refunded) is applied when the order is; dropping it would
    -- let a lost dispute's payouts go out.
    SELECT count(*) INTO n FROM disputes;
    IF n > 0 THEN
        RAISE EXCEPTION 'refusing to revert 0009_disputes: % disputes are recorded and would be lost', n;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE seller_transfers DROP COLUMN reversal_amount;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'cancelled', 'expired', 'refund_pending', 'refunded'));
DROP TABLE disputes;
