-- +goose Up
-- The webhook logs (every delivery, valid or not, kept 90 days: tens of
-- millions of rows) become partitioned by UTC day on received_at, so
-- retention drops whole partitions (constant time, no dead tuples) instead
-- of deleting rows in batches. A DEFAULT partition catches a delivery whose
-- day has no partition yet (the periodic job creates them days ahead);
-- creating that day's partition moves such rows into it.
--
-- Dedupe cannot stay a unique index of a log (on a partitioned table a
-- unique index must include the partition key): the narrow event tables are
-- the authority, hyperswitch_events already, and now stripe_events.

-- veza_ensure_day_partition creates parent's partition for one UTC day
-- (parent_pYYYYMMDD), moving that day's rows out of parent_default, and
-- reports whether it created it. Serialised per partition.
-- +goose StatementBegin
CREATE FUNCTION veza_ensure_day_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := parent || '_p' || to_char(day, 'YYYYMMDD');
    lo   timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi   timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(part));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE received_at >= $1 AND received_at < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
        parent || '_default', part) USING lo, hi;
    -- A matching CHECK lets ATTACH skip scanning the new partition.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (received_at >= %L AND received_at < %L)', part, part || '_day', lo, hi);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_day');
    RETURN true;
END $$;
-- +goose StatementEnd

-- veza_drop_day_partitions drops parent's day partitions of days before
-- keep_from (whole days only) and returns how many.
-- +goose StatementBegin
CREATE FUNCTION veza_drop_day_partitions(parent text, keep_from date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent::regclass AND c.relname ~ ('^' || parent || '_p[0-9]{8}$')
          AND to_date(right(c.relname, 8), 'YYYYMMDD') < keep_from
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
-- +goose StatementEnd

-- veza_partition_days creates parent's partitions for every UTC day from
-- first to last.
-- +goose StatementBegin
CREATE FUNCTION veza_partition_days(parent text, first date, last date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    n integer := 0;
BEGIN
    FOR d IN SELECT generate_series(first, last, interval '1 day')::date LOOP
        IF veza_ensure_day_partition(parent, d) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;
-- +goose StatementEnd

-- Hyperswitch's log, converted in place: same columns, same indexes (now
-- per partition), the primary key with the partition key.
ALTER TABLE hyperswitch_webhook_log RENAME TO hyperswitch_webhook_log_plain;
ALTER INDEX hyperswitch_webhook_log_pkey RENAME TO hyperswitch_webhook_log_plain_pkey;
ALTER INDEX hyperswitch_webhook_log_invalid_idx RENAME TO hyperswitch_webhook_log_plain_invalid_idx;
ALTER INDEX hyperswitch_webhook_log_received_at_idx RENAME TO hyperswitch_webhook_log_plain_received_at_idx;
CREATE TABLE hyperswitch_webhook_log (
    id                UUID NOT NULL DEFAULT gen_random_uuid(),
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    request_id        TEXT NOT NULL,
    source_ip         TEXT NULL,
    user_agent        TEXT NULL,
    signature_valid   BOOLEAN NOT NULL,
    event_id          TEXT NULL,
    event_type        TEXT NULL,
    payload           TEXT NOT NULL,
    processing_result TEXT NOT NULL,
    processed_at      TIMESTAMPTZ NULL,
    payload_sha256    CHAR(64) NULL,
    payload_bytes     INTEGER NULL CHECK (payload_bytes >= 0),
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX hyperswitch_webhook_log_invalid_idx ON hyperswitch_webhook_log (received_at DESC) WHERE signature_valid = false;
CREATE INDEX hyperswitch_webhook_log_received_at_idx ON hyperswitch_webhook_log (received_at);
CREATE TABLE hyperswitch_webhook_log_default PARTITION OF hyperswitch_webhook_log DEFAULT;
SELECT veza_partition_days('hyperswitch_webhook_log',
    least((SELECT min(received_at) AT TIME ZONE 'UTC' FROM hyperswitch_webhook_log_plain)::date, (now() AT TIME ZONE 'UTC')::date),
    greatest((SELECT max(received_at) AT TIME ZONE 'UTC' FROM hyperswitch_webhook_log_plain)::date, (now() AT TIME ZONE 'UTC')::date + 1));
INSERT INTO hyperswitch_webhook_log (id, received_at, request_id, source_ip, user_agent, signature_valid, event_id, event_type,
        payload, processing_result, processed_at, payload_sha256, payload_bytes)
    SELECT id, received_at, request_id, source_ip, user_agent, signature_valid, event_id, event_type,
        payload, processing_result, processed_at, payload_sha256, payload_bytes
    FROM hyperswitch_webhook_log_plain;
DROP TABLE hyperswitch_webhook_log_plain;

-- Stripe's: dedupe moves to stripe_events, filled from the log first.
CREATE TABLE stripe_events (
    event_id    VARCHAR(255) PRIMARY KEY,
    event_type  VARCHAR(128) NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_received_at_idx ON stripe_events (received_at);
INSERT INTO stripe_events (event_id, event_type, received_at)
    SELECT event_id, event_type, received_at FROM stripe_webhook_log
    WHERE signature_valid AND processing_result <> 'duplicate' AND event_id IS NOT NULL
    ON CONFLICT DO NOTHING;
ALTER TABLE stripe_webhook_log RENAME TO stripe_webhook_log_plain;
ALTER INDEX stripe_webhook_log_pkey RENAME TO stripe_webhook_log_plain_pkey;
ALTER INDEX stripe_webhook_log_received_at_idx RENAME TO stripe_webhook_log_plain_received_at_idx;
DROP INDEX stripe_webhook_log_event_id_key;
CREATE TABLE stripe_webhook_log (
    id                UUID NOT NULL DEFAULT gen_random_uuid(),
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    source_ip         TEXT NULL,
    signature_valid   BOOLEAN NOT NULL,
    event_id          VARCHAR(255) NULL,
    event_type        VARCHAR(128) NULL,
    account_id        VARCHAR(255) NULL,
    payload           TEXT NOT NULL,
    payload_sha256    CHAR(64) NULL,
    payload_bytes     INTEGER NULL,
    processing_result TEXT NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX stripe_webhook_log_received_at_idx ON stripe_webhook_log (received_at);
CREATE TABLE stripe_webhook_log_default PARTITION OF stripe_webhook_log DEFAULT;
SELECT veza_partition_days('stripe_webhook_log',
    least((SELECT min(received_at) AT TIME ZONE 'UTC' FROM stripe_webhook_log_plain)::date, (now() AT TIME ZONE 'UTC')::date),
    greatest((SELECT max(received_at) AT TIME ZONE 'UTC' FROM stripe_webhook_log_plain)::date, (now() AT TIME ZONE 'UTC')::date + 1));
INSERT INTO stripe_webhook_log (id, received_at, source_ip, signature_valid, event_id, event_type, account_id, payload,
        payload_sha256, payload_bytes, processing_result)
    SELECT id, received_at, source_ip, signature_valid, event_id, event_type, account_id, payload,
        payload_sha256, payload_bytes, processing_result
    FROM stripe_webhook_log_plain;
DROP TABLE stripe_webhook_log_plain;

-- +goose Down
-- Back to plain tables, every row kept (the partitions are read through
-- their parent), the unique dedupe index of Stripe's log restored.
CREATE TABLE hyperswitch_webhook_log_plain (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    request_id        TEXT NOT NULL,
    source_ip         TEXT NULL,
    user_agent        TEXT NULL,
    signature_valid   BOOLEAN NOT NULL,
    event_id          TEXT NULL,
    event_type        TEXT NULL,
    payload           TEXT NOT NULL,
    processing_result TEXT NOT NULL,
    processed_at      TIMESTAMPTZ NULL,
    payload_sha256    CHAR(64) NULL,
    payload_bytes     INTEGER NULL CHECK (payload_bytes >= 0)
);
INSERT INTO hyperswitch_webhook_log_plain SELECT id, received_at, request_id, source_ip, user_agent, signature_valid, event_id, event_type,
    payload, processing_result, processed_at, payload_sha256, payload_bytes FROM hyperswitch_webhook_log;
DROP TABLE hyperswitch_webhook_log;
ALTER TABLE hyperswitch_webhook_log_plain RENAME TO hyperswitch_webhook_log;
ALTER INDEX hyperswitch_webhook_log_plain_pkey RENAME TO hyperswitch_webhook_log_pkey;
CREATE INDEX hyperswitch_webhook_log_invalid_idx ON hyperswitch_webhook_log (received_at DESC) WHERE signature_valid = false;
CREATE INDEX hyperswitch_webhook_log_received_at_idx ON hyperswitch_webhook_log (received_at);

CREATE TABLE stripe_webhook_log_plain (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    source_ip         TEXT NULL,
    signature_valid   BOOLEAN NOT NULL,
    event_id          VARCHAR(255) NULL,
    event_type        VARCHAR(128) NULL,
    account_id        VARCHAR(255) NULL,
    payload           TEXT NOT NULL,
    payload_sha256    CHAR(64) NULL,
    payload_bytes     INTEGER NULL,
    processing_result TEXT NOT NULL
);
INSERT INTO stripe_webhook_log_plain SELECT id, received_at, source_ip, signature_valid, event_id, event_type, account_id, payload,
    payload_sha256, payload_bytes, processing_result FROM stripe_webhook_log;
DROP TABLE stripe_webhook_log;
ALTER TABLE stripe_webhook_log_plain RENAME TO stripe_webhook_log;
ALTER INDEX stripe_webhook_log_plain_pkey RENAME TO stripe_webhook_log_pkey;
CREATE UNIQUE INDEX stripe_webhook_log_event_id_key ON stripe_webhook_log (event_id)
    WHERE signature_valid AND processing_result <> 'duplicate';
CREATE INDEX stripe_webhook_log_received_at_idx ON stripe_webhook_log (received_at);
DROP TABLE stripe_events;

DROP FUNCTION veza_partition_days(text, date, date);
DROP FUNCTION veza_drop_day_partitions(text, date);
DROP FUNCTION veza_ensure_day_partition(text, date);
