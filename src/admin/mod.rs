//! What admins do to accounts, beyond enabling and disabling them (which lives
//! with the account rules): credit corrections and plan assignment. The admin
//! REST API (`routes::admin`) and the admin pages call [`service`].

pub mod service;
