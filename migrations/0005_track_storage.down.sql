-- Safe only while every track is still local: dropping the columns would
-- lose where the S3 objects are.
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
DROP INDEX tracks_storage_backend_s3_idx;
ALTER TABLE tracks DROP COLUMN storage_key, DROP COLUMN storage_backend;
