-- No reader needs workers_heartbeat_at_idx: the operator and the Admin API read every
-- row (the stale gauge counts in the same full scan), and `GET /workers` orders by the
-- primary key. Keeping it made every heartbeat (an UPDATE of heartbeat_at, once a second
-- per worker) a non-HOT update with a new index entry: see docs/benchmarks.md.
DROP INDEX IF EXISTS workers_heartbeat_at_idx;
