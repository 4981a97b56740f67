-- Singleton tasks of `berth serve` (the scheduled sync, the promotion scheduler, and later the
-- rebuild and retention runs) run on the replica holding their lease. Times are the database's
-- clock in milliseconds since the epoch, so replicas with skewed clocks agree. `epoch` grows by
-- one whenever the lease changes hands; every write of the task carries it (fencing), so a
-- former holder that was paused past its expiry cannot write once another holds the lease.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    acquired_at_ms INTEGER NOT NULL,
    renewed_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) STRICT;

-- Each finished run of a singleton task, written by the lease holder under its epoch: the
-- replicas compute when the next run is due from the last one, and tests count them.
CREATE TABLE task_runs (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX task_runs_task ON task_runs (task, started_at_ms);
