-- Worker quarantine: a worker whose trials fail with infrastructure errors N times in a
-- row gets no new leases until an admin clears it.
ALTER TABLE workers DROP CONSTRAINT workers_state_check;
ALTER TABLE workers ADD CONSTRAINT workers_state_check CHECK (state IN ('alive', 'gone', 'revoked', 'quarantined'));
ALTER TABLE workers ADD COLUMN infra_failures_in_a_row int NOT NULL DEFAULT 0;
