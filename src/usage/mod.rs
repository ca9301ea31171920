//! What users spent: the report behind `/usage` (`service`, server only),
//! the CSV export of their calls (`export`, server only) and the types the
//! page shares with the report (`types`).

#[cfg(feature = "ssr")]
pub mod export;
#[cfg(feature = "ssr")]
pub mod service;
pub mod types;
