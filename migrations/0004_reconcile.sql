-- +goose Up
-- Reconciliation: orders imported from before this system may have no
-- payment id (the sweep leaves them alone), and each sweep takes the rows
-- reconciled longest ago first, so rows that stay stuck (a payment the PSP
-- never saw) rotate instead of starving newer ones.
ALTER TABLE orders ALTER COLUMN payment_id DROP NOT NULL;
ALTER TABLE orders ADD COLUMN reconciled_at TIMESTAMPTZ NULL;
ALTER TABLE refunds ADD COLUMN reconciled_at TIMESTAMPTZ NULL;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    missing BIGINT;
BEGIN
    SELECT count(*) INTO missing FROM orders WHERE payment_id IS NULL;
    IF missing > 0 THEN
        RAISE EXCEPTION 'refusing to revert 0004_reconcile: % orders have no payment_id (legacy imports) and payment_id would become NOT NULL again; give them one or delete them first', missing;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE refunds DROP COLUMN reconciled_at;
ALTER TABLE orders DROP COLUMN reconciled_at;
ALTER TABLE orders ALTER COLUMN payment_id SET NOT NULL;
