-- Retention: what it needs to decide on complete knowledge and to remember what it deleted.
-- A sync whose tag listing was cut at the cap records it: such a repository's knowledge is
-- partial, so retention deletes nothing there until a complete sync.
ALTER TABLE repositories ADD COLUMN last_sync_truncated BOOLEAN NOT NULL DEFAULT FALSE;

-- Manifests berth deleted from a repository (`berth retention apply`), written after the
-- registry accepted the DELETE. A later sync that sees the digest tagged again removes the row.
CREATE TABLE deleted_manifests (
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    deleted_at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (registry, repository, digest)
);
