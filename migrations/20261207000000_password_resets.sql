-- One-time links an admin makes for a user who forgot their password. Only a
-- keyed hash of the link's token is kept; a newer link replaces the older.
CREATE TABLE password_resets (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    token_hash  BLOB    NOT NULL UNIQUE,
    created_by  INTEGER NOT NULL,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at  TEXT    NOT NULL,
    used_at     TEXT
);
CREATE INDEX password_resets_by_user ON password_resets (user_id);
