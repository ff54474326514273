-- The data files uploaded with a sweep (path as written in the sweep file -> SHA-256),
-- so trials the coordinator adds later (TPE proposals) bind the same blobs through the
-- one binding function instead of copying another trial's.
ALTER TABLE sweeps ADD COLUMN data_blobs jsonb NOT NULL DEFAULT '{}'::jsonb;
