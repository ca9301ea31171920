//! One module per page: the component and the server functions it calls.

pub mod home;
pub mod not_found;
