-- One-time (capped) key uses taken by calls that have not ended. A use is
-- counted in `api_keys.usage_count` and recorded here in one transaction, and
-- its row is deleted in exactly the write that ends it: the give-back (with
-- the decrement), or the batch holding the call's settlement when the use is
-- kept. What is still here at start was left by a process that was killed
-- mid-call, and start-up gives those uses back. Before, the key's id rode on
-- the call's `open_holds` row, written up to a batch later than the use: a
-- kill in between lost the use, and a kill after a give-back but before the
-- hold's removal gave it back twice.
CREATE TABLE capped_uses_in_flight (
    -- AUTOINCREMENT: a number is never reused, so a late end cannot meet
    -- another call's use.
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id INTEGER NOT NULL
);

INSERT INTO capped_uses_in_flight (key_id)
SELECT capped_key_id FROM open_holds WHERE capped_key_id IS NOT NULL;

-- The hold no longer names the key. SQLite's DROP COLUMN trips over the
-- comments in this table's definition, so the table is rebuilt with its rows.
CREATE TABLE open_holds_new (
    -- The hold's number in the process that took it; the table is emptied
    -- at every start, before any call, so numbers never meet.
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0)
);

INSERT INTO open_holds_new (id, user_id, amount_micros)
SELECT id, user_id, amount_micros FROM open_holds;

DROP TABLE open_holds;
ALTER TABLE open_holds_new RENAME TO open_holds;
