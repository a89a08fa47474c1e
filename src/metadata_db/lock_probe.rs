//! The one SQL fragment that tells whether a process holds a worker's node id lock, for
//! every reader (the operator's snapshot, the Admin API's list and get), in the reading
//! statement itself: no privilege needed, no lock taken, no call per worker.
//!
//! The key is Amp's, `hashtextextended(node_id, 0)`: Amp's workers take only that one,
//! and ours take it too (with the previous release's key beside it), so it alone says
//! whether a worker process of either kind runs. The lock lives exactly as long as the
//! worker's session: a worker that stopped or crashed has no lock, a hung one still has.

/// A CTE `held` (for after `WITH`): the one-bigint advisory locks granted in this
/// database, as keys (classid is the high 32 bits, objid the low, objsubid 1). Scanned
/// once per statement.
macro_rules! held_locks_cte {
    () => {
        "held AS (
       SELECT ((classid::bigint << 32) | objid::bigint) AS key FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 1
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
    };
}

/// The select-list column `lock_held` of a `workers` row, probed in `held`. `IN (SELECT
/// ...)` in the select list is a hashed subplan whatever PostgreSQL estimates: as a
/// `LEFT JOIN` it estimated `pg_locks` at one row and, at 50,000 workers, chose a nested
/// loop, 50,000 x 50,000 hashes, minutes a read.
macro_rules! lock_held_column {
    () => {
        concat!(lock_held_column_expr!(), " AS lock_held")
    };
}

/// [`lock_held_column`] without its name (e.g. inside an aggregate).
macro_rules! lock_held_column_expr {
    () => {
        "hashtextextended(workers.node_id, 0) IN (SELECT key FROM held)"
    };
}
