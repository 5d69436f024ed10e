-- +goose Up
-- The providers as they really are (docs/OPERATIONS.md, Money flows):
-- an order can expire; a reversal whose retries ran out waits for an
-- operator in reversal_failed; a transfer keeps the destination it was
-- planned with (a payout never reads the seller's current account) and the
-- round of its idempotency key, with when that key was first sent: Stripe
-- forgets a key after 24 h, so a later attempt looks the transfer up and
-- starts a new round with a new key. A refund the service starts by itself
-- (a partial capture, a payment that succeeded on a closed order) is
-- automatic.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'cancelled', 'expired', 'refund_pending', 'refunded'));
-- Hyperswitch's IntentStatus values run to 41 characters
-- (partially_authorized_and_requires_capture).
ALTER TABLE orders ALTER COLUMN payment_status TYPE VARCHAR(64);

ALTER TABLE seller_transfers DROP CONSTRAINT seller_transfers_status_check;
ALTER TABLE seller_transfers ADD CONSTRAINT seller_transfers_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'permanently_failed', 'reversal_pending', 'reversal_failed', 'reversed'));
ALTER TABLE seller_transfers
    ADD COLUMN destination          VARCHAR(255) NULL,
    ADD COLUMN payout_round         INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN payout_key_sent_at   TIMESTAMPTZ NULL,
    ADD COLUMN reversal_round       INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN reversal_key_sent_at TIMESTAMPTZ NULL;
-- Transfers planned before this release are sent to the account their
-- seller had at this migration.
-- Their key's first send is dated to their creation: one older than the key
-- window starts a new round, with a look-up, at its next attempt.
UPDATE seller_transfers t SET destination = u.stripe_account_id, payout_key_sent_at = t.created_at FROM users u
    WHERE u.id = t.seller_id AND t.status IN ('pending', 'failed');

DROP INDEX seller_transfers_open_idx;
CREATE INDEX seller_transfers_open_idx ON seller_transfers (status, updated_at)
    WHERE status IN ('pending', 'failed', 'reversal_pending', 'reversal_failed');

ALTER TABLE refunds ADD COLUMN automatic BOOLEAN NOT NULL DEFAULT false;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    n BIGINT;
BEGIN
    SELECT (SELECT count(*) FROM orders WHERE status = 'expired') + (SELECT count(*) FROM seller_transfers WHERE status = 'reversal_failed') INTO n;
    IF n > 0 THEN
        RAISE EXCEPTION 'refusing to revert 0008_provider_rounds: % expired orders or reversal_failed transfers have no status in the older schema; settle them first', n;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE refunds DROP COLUMN automatic;
DROP INDEX seller_transfers_open_idx;
CREATE INDEX seller_transfers_open_idx ON seller_transfers (status, updated_at)
    WHERE status IN ('pending', 'failed', 'reversal_pending');
ALTER TABLE seller_transfers DROP COLUMN reversal_key_sent_at, DROP COLUMN reversal_round, DROP COLUMN payout_key_sent_at,
    DROP COLUMN payout_round, DROP COLUMN destination;
ALTER TABLE seller_transfers DROP CONSTRAINT seller_transfers_status_check;
ALTER TABLE seller_transfers ADD CONSTRAINT seller_transfers_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'permanently_failed', 'reversal_pending', 'reversed'));
UPDATE orders SET payment_status = left(payment_status, 32);
ALTER TABLE orders ALTER COLUMN payment_status TYPE VARCHAR(32);
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'completed', 'failed', 'cancelled', 'refund_pending', 'refunded'));
