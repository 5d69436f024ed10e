-- +goose Up
-- A Hyperswitch delivery's log row is written at ingest and updated once,
-- when its event is processed (processing_result, processed_at). By then
-- its page is usually full, so the new version went to another page, with
-- a new entry in each of the partition's indexes and the relation
-- extended under its extension lock, beside the inserts of every new
-- delivery (make bench, half-rate ingest step: 1,982 of 5,586 updates
-- HOT). Each partition now leaves 30% of its pages free for that update:
-- it stays on its page (HOT, no index entry), and page pruning reclaims
-- the old version. The log takes at most 1/0.7 of the pages it took;
-- the non-HOT update wrote a second tuple and index entries anyway.
--
-- A partitioned table has no storage parameters of its own (PostgreSQL
-- refuses fillfactor on it), so the DEFAULT partition is the template:
-- veza_ensure_day_partition gives a new day's partition the DEFAULT
-- partition's storage parameters. Existing partitions take the setting
-- for the pages they fill from now on (SET takes SHARE UPDATE EXCLUSIVE:
-- reads and writes go on).
ALTER TABLE hyperswitch_webhook_log_default SET (fillfactor = 70);
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'hyperswitch_webhook_log'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %I SET (fillfactor = 70)', r.relname);
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION veza_ensure_day_partition(parent text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := parent || '_p' || to_char(day, 'YYYYMMDD');
    lo   timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi   timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    opts text;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(part));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- The DEFAULT partition's storage parameters (fillfactor) are the
    -- template of every day's partition.
    SELECT string_agg(format('%I = %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
        INTO opts FROM pg_class c, unnest(c.reloptions) AS o WHERE c.oid = to_regclass(parent || '_default');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent)
        || CASE WHEN opts IS NULL THEN '' ELSE ' WITH (' || opts || ')' END;
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE received_at >= $1 AND received_at < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
        parent || '_default', part) USING lo, hi;
    -- A matching CHECK lets ATTACH skip scanning the new partition.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (received_at >= %L AND received_at < %L)', part, part || '_day', lo, hi);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_day');
    RETURN true;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION veza_ensure_day_partition(parent text, day date) RETURNS boolean
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
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'hyperswitch_webhook_log'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %I RESET (fillfactor)', r.relname);
    END LOOP;
END $$;
-- +goose StatementEnd
