-- Freshness: what a tag pointed at before it moved. The tags table holds only where a tag
-- points now; "the base's channel moved from B to B'" needs the B. One row per move seen by a
-- sync (a tag that returns at another digest counts). Never updated.
CREATE TABLE tag_moves (
    id BIGSERIAL PRIMARY KEY,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    from_digest TEXT NOT NULL,
    to_digest TEXT NOT NULL,
    moved_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX tag_moves_tag ON tag_moves (registry, repository, tag);
CREATE INDEX tag_moves_from ON tag_moves (from_digest);
