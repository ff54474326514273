-- A budget enforced by the coordinator, not only asked of the worker. When a budget
-- runs out, the leases of the trials it covers are marked `hand_back`; a marked lease is
-- no longer extended (heartbeats and progress leave its expiry as it is), so it ends
-- within one lease whatever the worker does, and the reaper then queues the trial again
-- without counting a lost lease (the trial did nothing wrong). A claim clears the mark.
ALTER TABLE trials ADD COLUMN hand_back boolean NOT NULL DEFAULT false;

-- Who may change a sweep: the API token that submitted it (or an admin). Other client
-- tokens may read it. Sweeps stored before this have no owner: only an admin changes them.
ALTER TABLE sweeps ADD COLUMN owner_token uuid REFERENCES api_tokens (id);

-- A price per instance-hour is 0 to 10,000 USD (`fleet::prices::MAX_USD_PER_HOUR`): an
-- absurd one (1e308) overflowed the cost sums and stopped every fleet's reconcile pass.
-- NOT VALID: rows stored before are left as they are; every new or changed row is checked.
ALTER TABLE fleets ADD CONSTRAINT fleets_price_sane CHECK (price_per_hour BETWEEN 0 AND 10000) NOT VALID;
ALTER TABLE fleet_prices ADD CONSTRAINT fleet_prices_sane CHECK (usd_per_hour BETWEEN 0 AND 10000) NOT VALID;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_budget_sane CHECK (max_cost_usd <= 1e9) NOT VALID;
ALTER TABLE fleets ADD CONSTRAINT fleets_budget_sane CHECK (max_cost_usd <= 1e9) NOT VALID;

-- A blob is deleted only when nothing refers to it (`db::blobs::referenced`): these
-- make the look-ups by blob cheap.
CREATE INDEX trials_model_blob_idx ON trials (model_blob) WHERE model_blob IS NOT NULL;
CREATE INDEX trials_checkpoint_blob_idx ON trials (checkpoint_blob) WHERE checkpoint_blob IS NOT NULL;

-- Dashboard logins: the cookie holds a session id of its own (stored hashed), not the
-- API token; it expires, logout ends it, and revoking its token ends it.
CREATE TABLE web_sessions (
    id_hash    text PRIMARY KEY,
    token_id   uuid NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_token ON web_sessions (token_id);

-- The attempts history written once per attempt instead of twice (issue 38: measured on
-- 2 cores, the old insert-then-update trigger cost about 10% of the drain rate and the
-- foreign key's check per insert about 7% more). A running attempt is the trial row itself (its
-- `leased_at`, set by the claim in the same update); an attempt is written once, when it
-- ends, into `attempt_records`; `trial_attempts` is now the view of both, so what reads
-- it (costs, the dashboard, estimates) reads the same rows as before. The trigger runs
-- only when a lease ends (WHEN), before the row is written (inline, not queued), and the
-- foreign key's check per insert is gone: nothing deletes trials, and
-- `sweep-coordinator check` reports an attempt without its trial.
ALTER TABLE trials ADD COLUMN leased_at timestamptz;
UPDATE trials t SET leased_at = a.started_at
    FROM trial_attempts a
    WHERE a.trial_id = t.id AND a.attempt = t.attempt AND a.ended_at IS NULL AND t.state = 'leased';
DELETE FROM trial_attempts WHERE ended_at IS NULL;
DROP TRIGGER trials_record_attempt ON trials;
DROP FUNCTION record_trial_attempt();
ALTER TABLE trial_attempts RENAME TO attempt_records;
ALTER TABLE attempt_records DROP CONSTRAINT trial_attempts_trial_id_fkey;

CREATE FUNCTION record_attempt_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'leased' OR NEW.attempt <> OLD.attempt THEN
        INSERT INTO attempt_records (trial_id, attempt, worker_id, started_at, ended_at, outcome, error)
        VALUES (OLD.id, OLD.attempt, OLD.lease_owner, coalesce(OLD.leased_at, OLD.updated_at), now(),
                CASE
                    WHEN NEW.state NOT IN ('queued', 'leased') THEN NEW.state
                    WHEN NEW.lost_count > OLD.lost_count THEN 'lost'
                    WHEN NEW.preempted_count > OLD.preempted_count THEN 'preempted'
                    WHEN NEW.error_count > OLD.error_count THEN 'error'
                    ELSE 'released' END,
                CASE WHEN NEW.error_count > OLD.error_count OR NEW.state IN ('failed', 'dead') THEN NEW.error END)
        ON CONFLICT (trial_id, attempt) DO NOTHING;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER trials_record_attempt_end BEFORE UPDATE OF state, attempt ON trials
    FOR EACH ROW WHEN (OLD.state = 'leased')
    EXECUTE FUNCTION record_attempt_end();

CREATE VIEW trial_attempts AS
    SELECT trial_id, attempt, worker_id, started_at, ended_at, outcome, error FROM attempt_records
    UNION ALL
    SELECT id, attempt, lease_owner, coalesce(leased_at, updated_at), NULL::timestamptz, NULL::text, NULL::text
    FROM trials WHERE state = 'leased';
