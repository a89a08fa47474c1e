-- The worker registry. One row per node id; timestamps are always written with the
-- database clock (now()) so that worker or operator clock skew cannot fake health.
CREATE TABLE IF NOT EXISTS workers (
    node_id       TEXT        PRIMARY KEY
                  CHECK (node_id ~ '^[a-zA-Z][a-zA-Z0-9_.-]*$' AND length(node_id) <= 128),
    info          JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Stale-worker queries ("heartbeat older than N seconds") range-scan this index.
CREATE INDEX IF NOT EXISTS workers_heartbeat_at_idx ON workers (heartbeat_at);
