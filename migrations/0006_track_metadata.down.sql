DROP INDEX tracks_listing_idx;
DROP INDEX tracks_title_search_idx;
ALTER TABLE tracks DROP COLUMN sha256, DROP COLUMN content_type, DROP COLUMN size_bytes;
