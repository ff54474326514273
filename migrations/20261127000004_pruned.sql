-- ASHA early stopping: a trial stopped at a rung ends `pruned`, keeping the metrics it reached.
ALTER TABLE trials DROP CONSTRAINT trials_state_check;
ALTER TABLE trials ADD CONSTRAINT trials_state_check
    CHECK (state IN ('queued', 'leased', 'succeeded', 'failed', 'cancelled', 'dead', 'pruned'));
ALTER TABLE trials DROP CONSTRAINT trials_result_only_succeeded;
ALTER TABLE trials ADD CONSTRAINT trials_result_only_succeeded
    CHECK (metrics IS NULL OR state IN ('succeeded', 'pruned'));
-- The sweep's early-stopping rule (null: none), read at every progress report.
ALTER TABLE sweeps ADD COLUMN early_stop jsonb;
