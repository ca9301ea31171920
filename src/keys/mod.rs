//! API keys: the format (`format`), the keyed hash they are stored as
//! (`hashing`), what a key may give the keys it makes (`bounds`), the rules
//! for creating, revoking and rotating them (`service`), and the types pages
//! and the REST API share (`types`).

#[cfg(feature = "ssr")]
pub mod auth;
#[cfg(feature = "ssr")]
pub mod bounds;
#[cfg(feature = "ssr")]
pub mod format;
#[cfg(feature = "ssr")]
pub mod hashing;
#[cfg(feature = "ssr")]
pub mod service;
pub mod types;
