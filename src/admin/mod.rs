//! What admins do to accounts, beyond enabling and disabling them (which lives
//! with the account rules): credit corrections, plan assignment, limit overrides
//! and key revocation ([`service`]); creating, editing and retiring plans ([`plans`]). The admin
//! REST API (`routes::admin`) and the admin pages call [`service`].

pub mod plans;
pub mod service;
