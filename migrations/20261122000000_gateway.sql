-- The gateway: credits with a ledger, durable limit windows and usage records.

-- The balance in micro-credits (1 credit = 1,000,000). It always equals the sum
-- of the user's ledger entries, and it can never go below zero.
ALTER TABLE users ADD COLUMN balance_micros INTEGER NOT NULL DEFAULT 0 CHECK (balance_micros >= 0);

CREATE TABLE credit_ledger (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    -- grant: signup or monthly plan credits; reserve: the worst case held before a
    -- call; refund: the hold released after it; settle: what the call cost;
    -- adjust: an admin's correction.
    kind          TEXT    NOT NULL CHECK (kind IN ('grant', 'reserve', 'refund', 'settle', 'adjust')),
    amount_micros INTEGER NOT NULL,
    request_id    TEXT,
    note          TEXT    NOT NULL DEFAULT '',
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX credit_ledger_by_user ON credit_ledger (user_id, id);

-- The plan's monthly grant is given once per user and calendar month (UTC).
CREATE TABLE monthly_grants (
    user_id INTEGER NOT NULL REFERENCES users (id),
    month   TEXT    NOT NULL,
    PRIMARY KEY (user_id, month)
);

-- Fixed request windows that must survive restarts: per user per hour and day,
-- per client IP per day. `subject` is `user:<id>` or `ip:<address>`.
CREATE TABLE limit_windows (
    subject      TEXT    NOT NULL,
    window       TEXT    NOT NULL CHECK (window IN ('hour', 'day')),
    window_start TEXT    NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (subject, window, window_start)
) WITHOUT ROWID;

-- One row per gateway call that reached a user's limits, for usage pages and billing.
CREATE TABLE usage_records (
    id                INTEGER PRIMARY KEY,
    request_id        TEXT,
    user_id           INTEGER NOT NULL REFERENCES users (id),
    key_id            INTEGER REFERENCES api_keys (id),
    model             TEXT    NOT NULL,
    stream            INTEGER NOT NULL CHECK (stream IN (0, 1)),
    status            INTEGER NOT NULL,
    error_code        TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros       INTEGER NOT NULL DEFAULT 0,
    latency_ms        INTEGER NOT NULL DEFAULT 0,
    client_ip         TEXT,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX usage_records_by_user ON usage_records (user_id, created_at);
CREATE INDEX usage_records_by_time ON usage_records (created_at);
