-- The usage inventory: who uses which image, one row per place an image is used (source,
-- scope, namespace, workload kind and name, container), updated in place rather than appended
-- to. Sources: admission (the webhook), cluster (`berth usage import`), ci (`berth check
-- --report`), source (`berth usage scan --record`). `usage_sources` keeps when each source's
-- scope last reported, and last reported in full (the freshness retention's guard reads).
CREATE TABLE usage_inventory (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    -- the cluster (admission, cluster), the pipeline (ci), the repository (source)
    scope TEXT NOT NULL,
    -- the Kubernetes namespace; the branch of a ci report; '' when there is none
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    container TEXT NOT NULL,
    -- as written; reference: normalized (NULL when unresolved or invalid); repository: the
    -- reference's `registry/path`, so that every tag and digest of a repository is one lookup
    image TEXT NOT NULL,
    reference TEXT,
    repository TEXT,
    digest TEXT,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    -- set when a full report no longer holds the row; cleared when it comes back
    gone_at TIMESTAMPTZ,
    UNIQUE (source, scope, namespace, kind, name, container)
);
CREATE INDEX usage_inventory_digest ON usage_inventory (digest);
CREATE INDEX usage_inventory_reference ON usage_inventory (reference);
CREATE INDEX usage_inventory_repository ON usage_inventory (repository);
CREATE INDEX usage_inventory_scope ON usage_inventory (source, scope, last_seen);

CREATE TABLE usage_sources (
    source TEXT NOT NULL,
    scope TEXT NOT NULL,
    last_report_at TIMESTAMPTZ NOT NULL,
    last_full_at TIMESTAMPTZ,
    PRIMARY KEY (source, scope)
);

-- The append-only admission log folds into the inventory: per place, the image of its latest
-- record, first and last seen.
INSERT INTO usage_inventory
    (source, scope, namespace, kind, name, container, image, reference, digest,
     first_seen, last_seen)
SELECT DISTINCT ON (namespace, kind, name, container)
    'admission', '', namespace, kind, name, container, image, NULL, digest,
    MIN(at) OVER (PARTITION BY namespace, kind, name, container), at
FROM admission_usage
ORDER BY namespace, kind, name, container, at DESC, id DESC;
DROP TABLE admission_usage;
