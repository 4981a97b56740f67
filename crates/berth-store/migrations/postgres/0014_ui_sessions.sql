-- The dashboard's sign-in sessions, shared by every replica on this store. A row is keyed by
-- the SHA-256 of the session id, never the id itself: a dump of the store holds no working
-- cookie. No CSRF token either: the server derives it from the session id it is sent.
CREATE TABLE ui_sessions (
    id_sha256 TEXT PRIMARY KEY,
    -- the API token signed in with: its name, the SHA-256 its config lists, its scope then;
    -- each request checks them against the tokens configured now
    token_name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ui_sessions_expires_at ON ui_sessions (expires_at);
