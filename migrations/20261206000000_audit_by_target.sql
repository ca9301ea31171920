-- The admin user page and the audit log's target filter look events up by
-- target (`user:<id>`, `key:<id>`); without this they read the whole log,
-- which only grows.
CREATE INDEX audit_events_by_target ON audit_events (target, id);
