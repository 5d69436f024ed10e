-- +goose Up
-- What an upload records besides its place, and the title search index.
ALTER TABLE tracks
    ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    ADD COLUMN content_type VARCHAR(64) NULL,
    ADD COLUMN sha256 CHAR(64) NULL;
CREATE INDEX tracks_title_search_idx ON tracks USING gin (to_tsvector('simple', title)) WHERE deleted_at IS NULL;
CREATE INDEX tracks_listing_idx ON tracks (created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX tracks_listing_idx;
DROP INDEX tracks_title_search_idx;
ALTER TABLE tracks DROP COLUMN sha256, DROP COLUMN content_type, DROP COLUMN size_bytes;
