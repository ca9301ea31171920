//! Plain HTTP handlers outside the Leptos pages, grouped by resource.

pub mod health;
