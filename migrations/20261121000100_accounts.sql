-- Accounts and the append-only audit trail.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    -- Trimmed and lowercased by the app; deleted accounts get a tombstone address.
    email         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    -- argon2id PHC string; empty once the account is deleted.
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'user'   CHECK (role IN ('user', 'admin')),
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'deleted')),
    -- Sessions remember the epoch they were created in; bumping it ends them all.
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deleted_at    TEXT
);

CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY,
    at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- No foreign key: events outlive the accounts they mention.
    actor_user_id INTEGER,
    action        TEXT    NOT NULL,
    target        TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    request_id    TEXT,
    -- JSON object with event-specific facts (never secrets).
    details       TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_by_time   ON audit_events (at);
CREATE INDEX audit_events_by_actor  ON audit_events (actor_user_id, at);
CREATE INDEX audit_events_by_action ON audit_events (action, at);

CREATE TRIGGER audit_events_are_not_updated BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_are_not_deleted BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
