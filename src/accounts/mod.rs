//! Accounts: registration, login, sessions, roles, profile and deletion.
//!
//! `types` is shared with the browser. The rest runs on the server: `domain`
//! parses input, `passwords` hashes, `service` holds every account rule (called by
//! the pages' server functions and the REST handlers alike), `session` ties a
//! browser session to a user, `throttle` slows down password guessing,
//! `device` tells the browsers an account signed in from before, and
//! `cookie_names` names the cookies the dashboard sets.

pub mod types;

#[cfg(feature = "ssr")]
pub mod cookie_names;
#[cfg(feature = "ssr")]
pub mod device;
#[cfg(feature = "ssr")]
pub mod domain;
#[cfg(feature = "ssr")]
pub mod passwords;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod throttle;
