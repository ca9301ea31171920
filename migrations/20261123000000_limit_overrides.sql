-- Per-user limits an admin set over the plan's. NULL: the plan's value.
CREATE TABLE limit_overrides (
    user_id             INTEGER PRIMARY KEY REFERENCES users (id),
    requests_per_minute INTEGER CHECK (requests_per_minute > 0),
    requests_per_hour   INTEGER CHECK (requests_per_hour > 0),
    requests_per_day    INTEGER CHECK (requests_per_day > 0),
    tokens_per_minute   INTEGER CHECK (tokens_per_minute > 0),
    max_parallel        INTEGER CHECK (max_parallel > 0),
    updated_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
