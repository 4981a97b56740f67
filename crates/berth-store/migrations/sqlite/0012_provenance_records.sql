-- What pipelines recorded about the digests they built and tested (`berth provenance record`,
-- POST /api/v1/provenance): the latest record per digest, stamped with the knowledge
-- generation so that the webhook's snapshot follows it like any other knowledge.
CREATE TABLE provenance_records (
    digest TEXT PRIMARY KEY,
    source TEXT,
    commit_sha TEXT,
    build_url TEXT,
    logs_url TEXT,
    -- passed | failed
    tests TEXT,
    tests_url TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    generation INTEGER NOT NULL
) STRICT;
CREATE INDEX provenance_records_generation ON provenance_records (generation);
