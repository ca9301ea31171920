//! What admins watch: the service's calls, errors, latency, busiest users and
//! keys and refusals (`/admin/monitor`, `GET /api/v1/admin/monitor`), and the
//! security view of failed logins and refused keys (`/admin/security`).
//! `service` (server only) builds the reports; `types` are shared with the pages.

#[cfg(feature = "ssr")]
pub mod service;
pub mod types;
