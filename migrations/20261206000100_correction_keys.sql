-- Admin corrections sent again under the same idempotency key (kept as the
-- ledger row's request_id) are found by this; only `adjust` rows are in it,
-- so the gateway's own ledger rows cost nothing more.
CREATE INDEX credit_ledger_corrections ON credit_ledger (user_id, request_id) WHERE kind = 'adjust';
