-- berth store schema 1 for PostgreSQL: registry knowledge, lineage, channel history, audit, usage.
-- Same tables, columns and meaning as migrations/sqlite/0001_initial.sql; only the types
-- differ: timestamptz, jsonb, bytea, boolean, bigint.

-- A registry host (`docker.io`, `127.0.0.1:5000`) and how its last sync went.
CREATE TABLE registries (
    host TEXT PRIMARY KEY NOT NULL,
    last_sync_ok_at TIMESTAMPTZ,
    last_sync_attempt_at TIMESTAMPTZ,
    last_error TEXT
);

CREATE TABLE repositories (
    registry TEXT NOT NULL REFERENCES registries (host),
    name TEXT NOT NULL,
    last_sync_ok_at TIMESTAMPTZ,
    last_sync_attempt_at TIMESTAMPTZ,
    last_error TEXT,
    PRIMARY KEY (registry, name)
);

-- Every manifest or index berth fetched, byte for byte (a promotion PUTs the same bytes).
-- Content-addressed, so never updated.
CREATE TABLE manifests (
    digest TEXT PRIMARY KEY NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    raw BYTEA NOT NULL,
    is_index BOOLEAN NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL
);

-- Tags are never deleted: a tag missing from a sync gets gone_at, and loses it when it returns.
CREATE TABLE tags (
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES manifests (digest),
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    -- Since when the tag has pointed at `digest` (a moved tag restarts it).
    digest_since TIMESTAMPTZ NOT NULL,
    gone_at TIMESTAMPTZ,
    PRIMARY KEY (registry, repository, tag),
    FOREIGN KEY (registry, repository) REFERENCES repositories (registry, name)
);
CREATE INDEX tags_digest ON tags (digest);

-- The entries of an index, in order. The child need not be fetched (attestations).
CREATE TABLE index_entries (
    index_digest TEXT NOT NULL REFERENCES manifests (digest),
    position BIGINT NOT NULL,
    child_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    os TEXT,
    arch TEXT,
    variant TEXT,
    is_attestation BOOLEAN NOT NULL,
    PRIMARY KEY (index_digest, position)
);
CREATE INDEX index_entries_child ON index_entries (child_digest);

-- Facts per platform image (one per image manifest). base_digest is the lineage edge:
-- indexed, so "which images are built on X" is a lookup.
CREATE TABLE images (
    digest TEXT PRIMARY KEY NOT NULL REFERENCES manifests (digest),
    config_digest TEXT NOT NULL,
    created TIMESTAMPTZ,
    os TEXT NOT NULL,
    arch TEXT NOT NULL,
    variant TEXT,
    labels JSONB NOT NULL,
    annotations JSONB NOT NULL,
    total_size BIGINT NOT NULL,
    os_id TEXT,
    os_pretty TEXT,
    libc TEXT,
    base_digest TEXT,
    -- berth_core::lineage::LineageMethod as text ('layer-prefix'); checked when read, so a
    -- new method needs no table rebuild.
    base_method TEXT,
    base_shared_layers BIGINT,
    first_seen_at TIMESTAMPTZ NOT NULL,
    CHECK ((base_digest IS NULL) = (base_method IS NULL))
);
CREATE INDEX images_base_digest ON images (base_digest);
CREATE INDEX images_os_id ON images (os_id);

CREATE TABLE image_layers (
    image_digest TEXT NOT NULL REFERENCES images (digest),
    position BIGINT NOT NULL,
    layer_digest TEXT NOT NULL,
    diff_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (image_digest, position)
);
CREATE INDEX image_layers_layer ON image_layers (layer_digest);

-- What the layer reader found in a layer (os-release, libc loader), cached by layer digest.
CREATE TABLE layer_facts (
    layer_digest TEXT PRIMARY KEY NOT NULL,
    summary JSONB NOT NULL,
    scanned_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE channel_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    catalog_name TEXT NOT NULL,
    variant TEXT,
    channel TEXT NOT NULL,
    digest TEXT NOT NULL,
    previous_digest TEXT,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('promotion', 'rollback', 'manual', 'drift'))
);
CREATE INDEX channel_history_name ON channel_history (catalog_name, channel, at);

CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    before_state JSONB,
    after_state JSONB
);
CREATE INDEX audit_log_subject ON audit_log (subject, at);

CREATE TABLE admission_usage (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    container TEXT NOT NULL,
    image TEXT NOT NULL,
    digest TEXT
);
CREATE INDEX admission_usage_digest ON admission_usage (digest, at);
CREATE INDEX admission_usage_at ON admission_usage (at);
