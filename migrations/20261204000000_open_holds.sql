-- Credit holds of calls admitted and not yet settled, written in the same
-- batch as their `reserve` ledger rows and removed with their `refund` rows.
-- What is still here when the server starts was left by a process that was
-- killed mid-call: start-up refunds it and gives back the capped key's use.
CREATE TABLE open_holds (
    -- The hold's number in the process that took it; the table is emptied
    -- at every start, before any call, so numbers never meet.
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
    -- The one-time (capped) key whose use the call took, if any.
    capped_key_id INTEGER
);
