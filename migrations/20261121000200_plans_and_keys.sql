-- Rate-limit plans and API keys.

CREATE TABLE plans (
    id                  INTEGER PRIMARY KEY,
    slug                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    description         TEXT    NOT NULL DEFAULT '',
    requests_per_minute INTEGER NOT NULL CHECK (requests_per_minute > 0),
    requests_per_hour   INTEGER NOT NULL CHECK (requests_per_hour > 0),
    requests_per_day    INTEGER NOT NULL CHECK (requests_per_day > 0),
    -- NULL: no limit of that kind.
    tokens_per_minute   INTEGER CHECK (tokens_per_minute > 0),
    max_parallel        INTEGER CHECK (max_parallel > 0),
    -- Granted each month, in micro-credits (1 credit = 1,000,000).
    monthly_credits     INTEGER NOT NULL DEFAULT 0 CHECK (monthly_credits >= 0),
    max_active_keys     INTEGER NOT NULL CHECK (max_active_keys > 0),
    -- NULL: every model; otherwise a JSON array of model names.
    allowed_models      TEXT,
    -- Public plans are self-service; private ones only admins assign.
    is_public           INTEGER NOT NULL DEFAULT 1 CHECK (is_public IN (0, 1)),
    is_default          INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    sort_order          INTEGER NOT NULL DEFAULT 0,
    retired_at          TEXT,
    created_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- At most one default plan.
CREATE UNIQUE INDEX plans_single_default ON plans (is_default) WHERE is_default = 1;

INSERT INTO plans (slug, name, description, requests_per_minute, requests_per_hour, requests_per_day,
                   tokens_per_minute, max_parallel, monthly_credits, max_active_keys, is_public, is_default, sort_order)
VALUES
    ('starter', 'Starter', '10 requests a day, 2 a minute. For trying things out.',
     2, 10, 10, 10000, 1, 100000000, 2, 1, 1, 10),
    ('standard', 'Standard', '20 requests a day, 4 a minute. For a small project.',
     4, 20, 20, 20000, 2, 250000000, 3, 1, 0, 20),
    ('pro', 'Pro', '30 requests a day, 6 a minute. For daily use.',
     6, 30, 30, 40000, 3, 500000000, 5, 1, 0, 30);

-- Every account is on one plan; new accounts get the default plan.
ALTER TABLE users ADD COLUMN plan_id INTEGER REFERENCES plans (id);
UPDATE users SET plan_id = (SELECT id FROM plans WHERE is_default = 1);

CREATE TABLE api_keys (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    name             TEXT    NOT NULL,
    env              TEXT    NOT NULL CHECK (env IN ('live', 'test', 'staging', 'dev')),
    -- HMAC-SHA-256 of the full key under the server secret; the key itself is never stored.
    secret_hash      BLOB    NOT NULL UNIQUE,
    display_prefix   TEXT    NOT NULL,
    last_four        TEXT    NOT NULL,
    -- JSON arrays. NULL restrictions mean "no restriction".
    scopes           TEXT    NOT NULL,
    allowed_models   TEXT,
    ip_allowlist     TEXT,
    referrer_domains TEXT,
    -- NULL: unlimited. 1 makes a one-time key.
    usage_cap        INTEGER CHECK (usage_cap > 0),
    usage_count      INTEGER NOT NULL DEFAULT 0,
    expires_at       TEXT,
    -- During a rotation grace period the previous secret keeps working until grace_until.
    grace_hash       BLOB    UNIQUE,
    grace_until      TEXT,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_used_at     TEXT,
    revoked_at       TEXT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);
