DROP TABLE seller_transfers;
DROP TABLE refunds;
