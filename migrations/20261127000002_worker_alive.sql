-- Worker states carry the names the API shows: alive (was 'active'), gone, revoked.
ALTER TABLE workers DROP CONSTRAINT workers_state_check;
UPDATE workers SET state = 'alive' WHERE state = 'active';
ALTER TABLE workers ALTER COLUMN state SET DEFAULT 'alive';
ALTER TABLE workers ADD CONSTRAINT workers_state_check CHECK (state IN ('alive', 'gone', 'revoked'));
