-- Signatures and attestations of digests as berth sync read them from the registry (cosign's
-- `sha256-<hex>.sig` and `.att` tags, and OCI 1.1 referrers through their `sha256-<hex>`
-- tag index), and what each trusted key made of them. The layers' bytes are kept (bounded at
-- read time) so that a key added to the policy is checked without asking the registry again.

-- Which artifact manifest was read for a subject, where: a tag that moves is read again.
CREATE TABLE signature_sources (
    subject TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    -- the tag it was found at
    found_at TEXT NOT NULL,
    manifest TEXT NOT NULL,
    read_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subject, registry, repository, found_at)
);
CREATE INDEX signature_sources_repository ON signature_sources (registry, repository);

-- One signature or attestation layer of a subject. cosign adds a signer by repeating the
-- payload's layer with another signature annotation, so a layer is keyed by its blob and its
-- signature together (`layer`: the blob's digest, or the SHA-256 of "<blob> <signature>").
CREATE TABLE signature_layers (
    subject TEXT NOT NULL,
    layer TEXT NOT NULL,
    blob TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    found_at TEXT NOT NULL,
    -- signature | attestation
    kind TEXT NOT NULL,
    media_type TEXT NOT NULL,
    -- the layer's bytes, when read within bounds (JSON, so text)
    payload TEXT,
    -- cosign's signature annotation, for a simple signing layer
    signature TEXT,
    -- why it was not read (over the size limit, a media type berth does not read)
    problem TEXT,
    PRIMARY KEY (subject, layer)
);

-- What one trusted key (by fingerprint) made of one layer.
CREATE TABLE signature_checks (
    subject TEXT NOT NULL,
    layer TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    key_name TEXT NOT NULL,
    verified BOOLEAN NOT NULL,
    refusal TEXT,
    predicate_type TEXT,
    builder TEXT,
    source_repository TEXT,
    source_commit TEXT,
    -- passed | failed, from a test-result statement
    tests TEXT,
    tests_url TEXT,
    checked_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subject, layer, key_fingerprint)
);

-- A subject's signatures changed at this knowledge generation (the webhook's snapshot follows).
CREATE TABLE signature_subjects (
    subject TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
CREATE INDEX signature_subjects_generation ON signature_subjects (generation);
