-- berth store schema 1 for SQLite: registry knowledge, lineage, channel history, audit, usage.
-- Same tables, columns and meaning as migrations/postgres/0001_initial.sql; only the types
-- differ. Timestamps are UTC RFC 3339 text (sortable as text: berth always writes +00:00),
-- JSON is text, booleans are 0/1. STRICT tables reject a value of the wrong type.

-- A registry host (`docker.io`, `127.0.0.1:5000`) and how its last sync went.
CREATE TABLE registries (
    host TEXT PRIMARY KEY NOT NULL,
    last_sync_ok_at TEXT,
    last_sync_attempt_at TEXT,
    last_error TEXT
) STRICT;

CREATE TABLE repositories (
    registry TEXT NOT NULL REFERENCES registries (host),
    name TEXT NOT NULL,
    last_sync_ok_at TEXT,
    last_sync_attempt_at TEXT,
    last_error TEXT,
    PRIMARY KEY (registry, name)
) STRICT;

-- Every manifest or index berth fetched, byte for byte (a promotion PUTs the same bytes).
-- Content-addressed, so never updated.
CREATE TABLE manifests (
    digest TEXT PRIMARY KEY NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    raw BLOB NOT NULL,
    is_index INTEGER NOT NULL CHECK (is_index IN (0, 1)),
    first_seen_at TEXT NOT NULL
) STRICT;

-- Tags are never deleted: a tag missing from a sync gets gone_at, and loses it when it returns.
CREATE TABLE tags (
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES manifests (digest),
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    -- Since when the tag has pointed at `digest` (a moved tag restarts it).
    digest_since TEXT NOT NULL,
    gone_at TEXT,
    PRIMARY KEY (registry, repository, tag),
    FOREIGN KEY (registry, repository) REFERENCES repositories (registry, name)
) STRICT;
CREATE INDEX tags_digest ON tags (digest);

-- The entries of an index, in order. The child need not be fetched (attestations).
CREATE TABLE index_entries (
    index_digest TEXT NOT NULL REFERENCES manifests (digest),
    position INTEGER NOT NULL,
    child_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    os TEXT,
    arch TEXT,
    variant TEXT,
    is_attestation INTEGER NOT NULL CHECK (is_attestation IN (0, 1)),
    PRIMARY KEY (index_digest, position)
) STRICT;
CREATE INDEX index_entries_child ON index_entries (child_digest);

-- Facts per platform image (one per image manifest). base_digest is the lineage edge:
-- indexed, so "which images are built on X" is a lookup.
CREATE TABLE images (
    digest TEXT PRIMARY KEY NOT NULL REFERENCES manifests (digest),
    config_digest TEXT NOT NULL,
    created TEXT,
    os TEXT NOT NULL,
    arch TEXT NOT NULL,
    variant TEXT,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    total_size INTEGER NOT NULL,
    os_id TEXT,
    os_pretty TEXT,
    libc TEXT,
    base_digest TEXT,
    -- berth_core::lineage::LineageMethod as text ('layer-prefix'); checked when read, so a
    -- new method needs no table rebuild.
    base_method TEXT,
    base_shared_layers INTEGER,
    first_seen_at TEXT NOT NULL,
    CHECK ((base_digest IS NULL) = (base_method IS NULL))
) STRICT;
CREATE INDEX images_base_digest ON images (base_digest);
CREATE INDEX images_os_id ON images (os_id);

CREATE TABLE image_layers (
    image_digest TEXT NOT NULL REFERENCES images (digest),
    position INTEGER NOT NULL,
    layer_digest TEXT NOT NULL,
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (image_digest, position)
) STRICT;
CREATE INDEX image_layers_layer ON image_layers (layer_digest);

-- What the layer reader found in a layer (os-release, libc loader), cached by layer digest.
CREATE TABLE layer_facts (
    layer_digest TEXT PRIMARY KEY NOT NULL,
    summary TEXT NOT NULL,
    scanned_at TEXT NOT NULL
) STRICT;

CREATE TABLE channel_history (
    id INTEGER PRIMARY KEY,
    catalog_name TEXT NOT NULL,
    variant TEXT,
    channel TEXT NOT NULL,
    digest TEXT NOT NULL,
    previous_digest TEXT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('promotion', 'rollback', 'manual', 'drift'))
) STRICT;
CREATE INDEX channel_history_name ON channel_history (catalog_name, channel, at);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    before_state TEXT,
    after_state TEXT
) STRICT;
CREATE INDEX audit_log_subject ON audit_log (subject, at);

CREATE TABLE admission_usage (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    container TEXT NOT NULL,
    image TEXT NOT NULL,
    digest TEXT
) STRICT;
CREATE INDEX admission_usage_digest ON admission_usage (digest, at);
CREATE INDEX admission_usage_at ON admission_usage (at);
