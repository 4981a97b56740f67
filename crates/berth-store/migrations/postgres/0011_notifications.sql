-- Notifications: every event berth tells about is recorded once (by its key) with one
-- delivery per target that hears it, in one transaction with what it was found from (the
-- audit cursor's advance, the admission denials it gathers), so a crash loses none and
-- finding it again records nothing twice. Deliveries are retried with backoff and carry the
-- event's id as their idempotency key.
CREATE TABLE notification_events (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    subject TEXT NOT NULL,
    summary TEXT NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE notification_deliveries (
    event_id BIGINT NOT NULL REFERENCES notification_events (id),
    target TEXT NOT NULL,
    -- pending | delivered | failed
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ,
    last_error TEXT,
    PRIMARY KEY (event_id, target)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);

-- How far each source of events has been read (the audit log's last id looked at).
CREATE TABLE notification_cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);

-- Admission denials gathered per image and window until they become one event.
CREATE TABLE admission_denials (
    image TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    count BIGINT NOT NULL,
    namespaces TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (image, window_start)
);

-- Since when a repository's syncs fail (the first failure after its last success): what
-- "sync failing for longer than D" counts from.
ALTER TABLE repositories ADD COLUMN failing_since TIMESTAMPTZ;
