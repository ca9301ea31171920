//! Plain HTTP handlers outside the Leptos pages, grouped by resource.

pub mod admin;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod openapi;
