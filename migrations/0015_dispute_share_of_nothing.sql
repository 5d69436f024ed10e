-- +goose Up
-- A seller's share of a lost dispute may round to nothing (one cent among
-- two sellers). It is written as 0, so the share is known: NULL on a
-- charged-back order's transfer reads as "all of it goes back", which
-- closed such a payout unpaid or reversed it in full.
ALTER TABLE seller_transfers DROP CONSTRAINT seller_transfers_reversal_amount_check;
ALTER TABLE seller_transfers ADD CONSTRAINT seller_transfers_reversal_amount_check CHECK (reversal_amount >= 0);

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE n bigint;
BEGIN
    -- A 0 cannot go back to NULL: NULL would take the seller's whole
    -- payout back.
    SELECT count(*) INTO n FROM seller_transfers WHERE reversal_amount = 0;
    IF n > 0 THEN
        RAISE EXCEPTION 'refusing to revert 0015_dispute_share_of_nothing: % transfers have a dispute share of nothing', n;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE seller_transfers DROP CONSTRAINT seller_transfers_reversal_amount_check;
ALTER TABLE seller_transfers ADD CONSTRAINT seller_transfers_reversal_amount_check CHECK (reversal_amount > 0);
