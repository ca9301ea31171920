-- A hold names its call, so that the refund a start gives for a hold a
-- killed process left (`Store::release_what_a_stop_left_taken`) names it
-- too, as every other ledger row of the call does. NULL for holds written
-- before.
ALTER TABLE open_holds ADD COLUMN request_id TEXT;
