-- +goose Up
-- Where a track's file lives. storage_key is the object key (set for both
-- backends; for s3 it is the key in the bucket). The partial index serves
-- migration-progress counts (GET /admin/storage/migration).
ALTER TABLE tracks
    ADD COLUMN storage_backend VARCHAR(16) NOT NULL DEFAULT 'local' CHECK (storage_backend IN ('local', 's3')),
    ADD COLUMN storage_key VARCHAR(512) NULL;
CREATE INDEX tracks_storage_backend_s3_idx ON tracks (id) WHERE storage_backend = 's3';

-- +goose Down
-- Safe only while every track is still local: dropping the columns would
-- lose where the S3 objects are.
-- +goose StatementBegin
DO $$
DECLARE
    on_s3 BIGINT;
BEGIN
    SELECT count(*) INTO on_s3 FROM tracks WHERE storage_backend = 's3';
    IF on_s3 > 0 THEN
        RAISE EXCEPTION 'refusing to revert 0005_track_storage: % tracks are stored in s3; migrate them back to local first (docs/OPERATIONS.md, storage migration playbook)', on_s3;
    END IF;
END
$$;
-- +goose StatementEnd
DROP INDEX tracks_storage_backend_s3_idx;
ALTER TABLE tracks DROP COLUMN storage_key, DROP COLUMN storage_backend;
