DROP INDEX seller_transfers_open_idx;
CREATE INDEX seller_transfers_status_idx ON seller_transfers (status, updated_at);
