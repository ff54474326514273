-- Sweep's store. Forward-only: never edit a migration that has shipped.

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'client', 'join')),
    token_hash  text NOT NULL CONSTRAINT api_tokens_hash_key UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE workers (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    host          text NOT NULL,
    gpus          jsonb NOT NULL DEFAULT '[]',
    slots         int NOT NULL CHECK (slots > 0),
    version       text NOT NULL,
    token_hash    text NOT NULL CONSTRAINT workers_token_hash_key UNIQUE,
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'gone', 'revoked')),
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sweeps (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CONSTRAINT sweeps_name_key UNIQUE,
    method       text NOT NULL,
    metric_name  text NOT NULL,
    metric_goal  text NOT NULL CHECK (metric_goal IN ('maximize', 'minimize')),
    spec_yaml    text NOT NULL,
    max_attempts int NOT NULL CHECK (max_attempts > 0),
    state        text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trials (
    id               uuid PRIMARY KEY,
    sweep_id         uuid NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    seq              int NOT NULL,
    params_hash      text NOT NULL,
    params           jsonb NOT NULL,
    config           jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'leased', 'succeeded', 'failed', 'cancelled', 'dead')),
    -- bumped by every claim; every worker write names it (fencing)
    attempt          int NOT NULL DEFAULT 0,
    max_attempts     int NOT NULL CHECK (max_attempts > 0),
    -- leases that expired (worker lost, preempted, partitioned): infrastructure
    lost_count       int NOT NULL DEFAULT 0,
    -- errors the trial itself reported: its error budget
    error_count      int NOT NULL DEFAULT 0,
    lease_owner      uuid REFERENCES workers (id),
    lease_expires_at timestamptz,
    not_before       timestamptz NOT NULL DEFAULT now(),
    epoch            int NOT NULL DEFAULT 0,
    latest           jsonb,
    metrics          jsonb,
    result           jsonb,
    objective        double precision,
    error            text,
    finished_by      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CONSTRAINT trials_sweep_params_key UNIQUE (sweep_id, params_hash),
    CONSTRAINT trials_lease_consistent CHECK (
        (state = 'leased') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT trials_result_only_succeeded CHECK (metrics IS NULL OR state = 'succeeded')
);

-- Claim order: oldest first; extension batches queue behind what was there.
CREATE INDEX trials_claim_idx ON trials (created_at, seq) WHERE state = 'queued';
CREATE INDEX trials_lease_idx ON trials (lease_expires_at) WHERE state = 'leased';
CREATE INDEX trials_sweep_updated_idx ON trials (sweep_id, updated_at);

-- Per-epoch metrics, append-only. One row per (trial, attempt, epoch).
CREATE TABLE trial_epochs (
    trial_id    uuid NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt     int NOT NULL,
    epoch       int NOT NULL,
    metrics     jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trial_id, attempt, epoch)
);
