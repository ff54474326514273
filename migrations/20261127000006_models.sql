-- The trained model of a succeeded trial, as a blob (kept for the top-k of each sweep).
ALTER TABLE trials ADD COLUMN model_blob text;
-- Attempts handed back on a spot interruption notice (not a failure: no budget spent).
ALTER TABLE trials ADD COLUMN preempted_count int NOT NULL DEFAULT 0;
