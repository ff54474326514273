-- The trained model of a succeeded trial, as a blob (kept for the top-k of each sweep).
ALTER TABLE trials ADD COLUMN model_blob text;
