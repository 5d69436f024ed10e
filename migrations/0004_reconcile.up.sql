-- Reconciliation: orders imported from before this system may have no
-- payment id (the sweep leaves them alone), and each sweep takes the rows
-- reconciled longest ago first, so rows that stay stuck (a payment the PSP
-- never saw) rotate instead of starving newer ones.
ALTER TABLE orders ALTER COLUMN payment_id DROP NOT NULL;
ALTER TABLE orders ADD COLUMN reconciled_at TIMESTAMPTZ NULL;
ALTER TABLE refunds ADD COLUMN reconciled_at TIMESTAMPTZ NULL;
