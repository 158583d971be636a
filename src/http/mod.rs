//! The HTTP API: `/api/v1` for EFS-Admin, health probes for the load balancer, the
//! OpenAPI document and Swagger UI for developers, `/metrics` for Prometheus.
//!
//! Handlers parse and validate their input (typed extractors in [`extract`]), call one
//! function of a storage contract or a service (`sync`, the token vault), and map the
//! result; every failure becomes a problem document in one place ([`problem`]).

mod auth;
mod connections;
mod docs;
mod error_log;
pub mod extract;
mod health;
mod managed_users;
pub mod metrics;
mod middleware;
mod okta_hooks;
mod openapi;
mod portal_settings;
pub mod problem;
mod readiness;
mod reply;
mod router;
pub mod server;
mod sessions;
pub mod state;
mod sync;
pub(crate) mod unassignment_queue;
mod user_references;

pub use router::{openapi, router};
pub use state::{AppState, Cors, EventHookAuth, HttpConfig, Services};
