//! One module per page: the component and the server functions it calls.

pub mod account;
pub mod admin;
pub mod admin_monitor;
pub mod admin_plans;
pub mod admin_user;
pub mod docs;
pub mod forms;
pub mod home;
pub mod keys;
pub mod login;
pub mod nav;
pub mod not_found;
pub mod plans;
pub mod playground;
pub mod register;
pub mod reset_password;
pub mod usage;
pub mod welcome;
