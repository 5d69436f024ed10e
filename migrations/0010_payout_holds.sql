-- +goose Up
-- A payout held by its order's open dispute: its job has finished and the
-- row waits with held_at set; the dispute's outcome clears it and enqueues
-- the next payout job in the same transaction. (A snoozed job cannot be
-- woken while it is still running: River's JobRetry skips running jobs.)
ALTER TABLE seller_transfers ADD COLUMN held_at TIMESTAMPTZ NULL;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    n BIGINT;
BEGIN
    SELECT count(*) INTO n FROM seller_transfers WHERE held_at IS NOT NULL;
    IF n > 0 THEN
        RAISE EXCEPTION 'refusing to revert 0010_payout_holds: % payouts are held by a dispute and would never be released', n;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE seller_transfers DROP COLUMN held_at;
