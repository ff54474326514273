-- What trials must share to train as one stacked model on a worker with --fuse: a hash
-- of the dataset, the hidden widths, the batch size and the epochs
-- (`sweep_spec::fuse_key`), written when the trial is inserted. (Not a generated column:
-- Postgres would recompute it on every update of the row, and the claim and completion
-- update each trial several times.) Trials inserted before it have none, and are leased
-- alone by a fusing worker.
ALTER TABLE trials ADD COLUMN fuse_key text;
CREATE INDEX trials_fuse_idx ON trials (fuse_key, created_at, seq) WHERE state = 'queued';
