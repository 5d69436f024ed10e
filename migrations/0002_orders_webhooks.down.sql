DROP TABLE hyperswitch_events;
DROP TABLE hyperswitch_webhook_log;
DROP TABLE idempotency_keys;
DROP TABLE order_items;
DROP TABLE orders;
DROP TABLE tracks;
