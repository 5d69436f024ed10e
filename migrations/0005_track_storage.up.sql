-- Where a track's file lives. storage_key is the object key (set for both
-- backends; for s3 it is the key in the bucket). The partial index serves
-- migration-progress counts (GET /admin/storage/migration).
ALTER TABLE tracks
    ADD COLUMN storage_backend VARCHAR(16) NOT NULL DEFAULT 'local' CHECK (storage_backend IN ('local', 's3')),
    ADD COLUMN storage_key VARCHAR(512) NULL;
CREATE INDEX tracks_storage_backend_s3_idx ON tracks (id) WHERE storage_backend = 's3';
