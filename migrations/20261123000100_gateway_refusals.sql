-- Model API calls refused before they reached a user's limits or the upstream
-- (bad body, bad or revoked keys, key restrictions, rate limits, credits), for
-- the monitor and security pages. Admitted calls are in usage_records.
CREATE TABLE gateway_refusals (
    id         INTEGER PRIMARY KEY,
    status     INTEGER NOT NULL,
    code       TEXT    NOT NULL,
    client_ip  TEXT,
    -- The presented key as the pages display keys (prefix…last four), never the secret.
    api_key    TEXT,
    -- The host of the Referer or Origin header, when one was sent.
    referrer   TEXT,
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX gateway_refusals_by_time ON gateway_refusals (created_at);

-- Time until the upstream answered (its first chunk, for streams), for the
-- monitor's latency by model; NULL for calls recorded before this column.
ALTER TABLE usage_records ADD COLUMN upstream_ms INTEGER;
