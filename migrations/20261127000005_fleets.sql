-- Fleets of worker instances that the coordinator launches, reconciles and retires.
CREATE TABLE fleets (
    id            uuid PRIMARY KEY,
    provider      text NOT NULL CHECK (provider IN ('ec2', 'local')),
    -- instance type, spot, region, subnet, security groups, image, key, profile
    spec          jsonb NOT NULL,
    desired       int NOT NULL CHECK (desired >= 0),
    max_count     int NOT NULL CHECK (max_count >= desired),
    max_hours     double precision NOT NULL CHECK (max_hours > 0),
    idle_minutes  double precision NOT NULL CHECK (idle_minutes > 0),
    -- the sweeps its workers serve; empty: every sweep
    sweeps        uuid[] NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'down', 'expired', 'failed')),
    -- since when its sweeps have had nothing queued or leased (NULL: busy)
    idle_since    timestamptz,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);

CREATE TABLE instances (
    -- Sweep's id for the instance: the launch's idempotency token and its `sweep:instance` tag.
    id             uuid PRIMARY KEY,
    fleet_id       uuid NOT NULL REFERENCES fleets (id),
    provider_id    text,
    state          text NOT NULL DEFAULT 'launching'
                   CHECK (state IN ('launching', 'running', 'terminating', 'terminated')),
    -- the single-use join token minted for this instance (hash only), its expiry and use
    join_hash      text UNIQUE,
    join_expires_at timestamptz NOT NULL,
    join_used_at   timestamptz,
    worker_id      uuid REFERENCES workers (id),
    launched_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz,
    terminated_at  timestamptz,
    end_reason     text
);
CREATE INDEX instances_fleet ON instances (fleet_id);
CREATE INDEX instances_worker ON instances (worker_id) WHERE worker_id IS NOT NULL;
CREATE UNIQUE INDEX instances_provider_id ON instances (provider_id) WHERE provider_id IS NOT NULL;
