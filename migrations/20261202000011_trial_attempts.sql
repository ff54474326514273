-- Each attempt of a trial: who ran it, from when to when, and how it ended. Recorded by
-- a trigger on the trial's own transitions, so every path that claims, completes,
-- fails, releases, preempts or reaps a lease (and any added later) records it in the
-- same transaction, with nothing to remember in the Rust code.
CREATE TABLE trial_attempts (
    trial_id   uuid NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt    int NOT NULL,
    worker_id  uuid,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    -- succeeded, pruned, failed, dead, cancelled; or, when the trial went back to the
    -- queue: lost (the lease expired), preempted (a spot notice), error (retried), released
    outcome    text,
    error      text,
    PRIMARY KEY (trial_id, attempt)
);

CREATE FUNCTION record_trial_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'leased' AND (NEW.state <> 'leased' OR NEW.attempt <> OLD.attempt) THEN
        UPDATE trial_attempts SET
            ended_at = now(),
            outcome = CASE
                WHEN NEW.state NOT IN ('queued', 'leased') THEN NEW.state
                WHEN NEW.lost_count > OLD.lost_count THEN 'lost'
                WHEN NEW.preempted_count > OLD.preempted_count THEN 'preempted'
                WHEN NEW.error_count > OLD.error_count THEN 'error'
                ELSE 'released' END,
            error = CASE WHEN NEW.error_count > OLD.error_count OR NEW.state IN ('failed', 'dead')
                         THEN NEW.error END
        WHERE trial_id = OLD.id AND attempt = OLD.attempt AND ended_at IS NULL;
    END IF;
    IF NEW.state = 'leased' AND NEW.attempt <> OLD.attempt THEN
        INSERT INTO trial_attempts (trial_id, attempt, worker_id) VALUES (NEW.id, NEW.attempt, NEW.lease_owner)
        ON CONFLICT (trial_id, attempt) DO NOTHING;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER trials_record_attempt AFTER UPDATE OF state, attempt ON trials
    FOR EACH ROW EXECUTE FUNCTION record_trial_attempt();
