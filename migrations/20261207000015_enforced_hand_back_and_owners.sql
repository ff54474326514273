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
