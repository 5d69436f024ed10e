-- +goose Up
-- The reconcile sweep reads failed orders again (a manual retry at
-- Hyperswitch may take the money on the same payment_id) while they are
-- younger than 30 days by updated_at. Not CONCURRENTLY: a concurrent build
-- waits for every open transaction, and a second runner waiting on the
-- migration lock is one, so two `app migrate` at once would wait on each
-- other for ever. The build reads orders once and holds writes to it
-- meanwhile (about a second per million orders here).
CREATE INDEX orders_failed_updated_at_idx ON orders (updated_at) WHERE status = 'failed';

-- +goose Down
DROP INDEX orders_failed_updated_at_idx;
