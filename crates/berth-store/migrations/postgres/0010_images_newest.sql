-- The dashboard and `GET /api/v1/images` list images newest first, a page at a time: an index
-- in that order (PostgreSQL puts NULLs first in a descending index unless told), so a page
-- reads its rows instead of sorting every image. The audit log's newest-first listing gets the
-- same.
CREATE INDEX images_newest
    ON images (created DESC NULLS LAST, digest);
CREATE INDEX audit_log_at
    ON audit_log (at, id);
