//! The API over real HTTP: every operation's success, not-found and bad-input paths.

#[path = "../common/mod.rs"]
mod common;

mod adoption;
mod auth;
mod bad_input;
mod database_faults;
mod edge;
mod error_log;
mod health;
mod managed_users;
mod openapi;
mod php_client;
mod references;
mod sessions;
mod settings;
mod tokens;
mod trust;
mod unassignments;
