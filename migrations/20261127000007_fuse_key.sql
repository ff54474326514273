-- What trials must share to train as one stacked model on a worker with --fuse: the
-- dataset, the hidden widths, the batch size and the epochs. Generated from the config,
-- so every path that inserts trials (submit, TPE proposals, confirm) gets it.
ALTER TABLE trials ADD COLUMN fuse_key text GENERATED ALWAYS AS (
    md5(coalesce(config -> 'dataset', 'null'::jsonb)::text
        || '|' || coalesce(config -> 'model' -> 'hidden', 'null'::jsonb)::text
        || '|' || coalesce(config -> 'train' -> 'batch_size', 'null'::jsonb)::text
        || '|' || coalesce(config -> 'train' -> 'epochs', 'null'::jsonb)::text)
) STORED;
CREATE INDEX trials_fuse_idx ON trials (fuse_key, created_at, seq) WHERE state = 'queued';
