//! The sync engine end to end: the service over real HTTP against the fake Okta
//! (crates/fake-okta), on SQLite and, where the test says so, on MariaDB; and the Okta
//! adapter on its own against the fake.

#[path = "../common/mod.rs"]
mod common;

mod boundary;
mod dpop;
mod error_log_purges;
mod helpers;
mod hostile_okta;
mod jobs;
mod okta_adapter;
mod okta_env;
mod okta_events;
mod portals;
mod reconcile;
mod status;
mod unassignments;
mod users;
