-- The checkpoint sweeper visits only trials that hold a checkpoint.
CREATE INDEX trials_checkpoint_idx ON trials (id) WHERE checkpoint_blob IS NOT NULL;
