//! Integration tests over real HTTP.
//!
//! Each test starts the real server in-process on port 0 with its own temporary
//! SQLite file (see `support::spawn_app`); upstream calls go to `support::mock_upstream`,
//! a real HTTP server speaking OpenAI's JSON and SSE.

// `reqwest` in these tests is the client of the dev-dependencies (see
// Cargo.toml), not the server's.
extern crate test_reqwest as reqwest;

mod support;

mod accounts;
mod admin;
mod admin_monitor;
mod admin_pages;
mod admin_plans;
mod bench;
mod binary;
mod docs;
mod gateway;
mod health;
mod keys;
mod mock_upstream;
mod pages;
mod sdk;
mod security;
mod server_basics;
mod usage_export;
