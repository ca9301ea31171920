//! What users spent: the report behind `/usage` (`service`, server only) and
//! the types the page shares with it (`types`).

#[cfg(feature = "ssr")]
pub mod service;
pub mod types;
