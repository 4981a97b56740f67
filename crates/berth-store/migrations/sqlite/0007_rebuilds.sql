-- Rebuild dispatches: every dispatch is recorded (with its audit entry) before it is sent, so
-- a crash never sends one unrecorded, and a pending one is sent again with the same key (the
-- receiver's idempotency key) rather than lost. One row per dispatch, one per image it
-- carries, one per target that has failed or been suspended.
CREATE TABLE rebuild_dispatches (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    content TEXT NOT NULL,
    target TEXT NOT NULL,
    wave INTEGER NOT NULL,
    body TEXT NOT NULL,
    -- pending (recorded, being delivered) | in-flight (delivered) | closed | failed | timed-out
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    next_attempt_at TEXT,
    finished_at TEXT,
    last_error TEXT
) STRICT;
CREATE INDEX rebuild_dispatches_state ON rebuild_dispatches (state);
CREATE INDEX rebuild_dispatches_created ON rebuild_dispatches (created_at);
CREATE INDEX rebuild_dispatches_content ON rebuild_dispatches (content);

CREATE TABLE rebuild_items (
    dispatch_id INTEGER NOT NULL REFERENCES rebuild_dispatches (id),
    reference TEXT NOT NULL,
    platform TEXT NOT NULL,
    digest TEXT NOT NULL,
    reasons TEXT NOT NULL,
    old_base TEXT,
    stale_since TEXT NOT NULL,
    -- in-flight | closed | rebuilt-on-old-base | gone | timed-out | failed
    state TEXT NOT NULL,
    new_digest TEXT,
    closed_at TEXT,
    PRIMARY KEY (dispatch_id, reference, platform)
) STRICT;

CREATE TABLE rebuild_targets (
    name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    suspended_at TEXT,
    suspended_reason TEXT
) STRICT;
