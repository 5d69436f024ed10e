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
ALTER TABLE refunds DROP COLUMN reconciled_at;
ALTER TABLE orders DROP COLUMN reconciled_at;
ALTER TABLE orders ALTER COLUMN payment_id SET NOT NULL;
