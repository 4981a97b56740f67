-- Knowledge at scale.
--
-- A config is content-addressed: a sync that meets a new manifest with a config some stored
-- image has reads that image's facts instead of fetching the config again, through this index.
CREATE INDEX images_config_digest ON images (config_digest);

-- The change sequence for incremental snapshots. Every write of policy knowledge (a repository's
-- sync, a lineage edge) takes the next generation from this one row, holding it until commit, and
-- stamps the rows it changed: a tag that is new, moved, gone or back; an image that is new or got
-- another base. A reader that built its snapshot at generation G reads only the rows stamped
-- after G (Store::knowledge_changes). Rows already here are generation 1, so "since 0" is all.
CREATE TABLE knowledge_generation (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO knowledge_generation (id, generation) VALUES (1, 1);
ALTER TABLE tags ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;
CREATE INDEX tags_generation ON tags (generation);
ALTER TABLE images ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;
CREATE INDEX images_generation ON images (generation);
