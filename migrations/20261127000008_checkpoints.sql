-- A trial's latest checkpoint (a blob: weights, optimiser state, epoch, early stopping)
-- and the epochs it had finished; a re-leased attempt resumes from it. The blob is
-- dropped when the trial succeeds; the epoch stays, as a record.
ALTER TABLE trials ADD COLUMN checkpoint_blob text, ADD COLUMN checkpoint_epoch int;
