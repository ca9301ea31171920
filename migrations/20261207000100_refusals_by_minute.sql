-- Refused calls counted by the minute: one row a minute for each status, code,
-- address, key and referrer, with how many there were and when the last came.
-- A row for every refusal let a client that ignores its 429s grow the
-- database by a row a call, kept for 30 days.
CREATE TABLE gateway_refusals_new (
    id         INTEGER PRIMARY KEY,
    -- The minute: the first 16 characters of the time (2026-12-07T06:01).
    minute     TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    code       TEXT    NOT NULL,
    -- '' for none (no address known, no well-formed key, no referrer): the
    -- unique index below would tell NULLs apart.
    client_ip  TEXT    NOT NULL DEFAULT '',
    -- The presented key as the pages display keys (prefix…last four), never the secret.
    api_key    TEXT    NOT NULL DEFAULT '',
    -- The host of the Referer or Origin header, when one was sent.
    referrer   TEXT    NOT NULL DEFAULT '',
    count      INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1),
    -- The last refusal's time.
    created_at TEXT    NOT NULL
);

INSERT INTO gateway_refusals_new
    (minute, status, code, client_ip, api_key, referrer, count, created_at)
SELECT substr(created_at, 1, 16), status, code,
       COALESCE(client_ip, ''), COALESCE(api_key, ''), COALESCE(referrer, ''),
       COUNT(*), MAX(created_at)
FROM gateway_refusals
GROUP BY substr(created_at, 1, 16), status, code,
         COALESCE(client_ip, ''), COALESCE(api_key, ''), COALESCE(referrer, '');

DROP TABLE gateway_refusals;
ALTER TABLE gateway_refusals_new RENAME TO gateway_refusals;
CREATE UNIQUE INDEX gateway_refusals_by_minute
    ON gateway_refusals (minute, status, code, client_ip, api_key, referrer);
CREATE INDEX gateway_refusals_by_time ON gateway_refusals (created_at);
