-- An image's layer chain as one comparable key: its diff_ids, base first, joined by ','.
-- Images with equal keys are twins (the same layers under another manifest, e.g. an OCI and a
-- Docker copy): lineage questions ("built on X") treat them as one image. Indexed, so finding
-- an image's twins is a lookup.
ALTER TABLE images ADD COLUMN chain_key TEXT;
UPDATE images SET chain_key = (
    SELECT group_concat(l.diff_id, ',' ORDER BY l.position)
    FROM image_layers l WHERE l.image_digest = images.digest
);
CREATE INDEX images_chain_key ON images (chain_key);
