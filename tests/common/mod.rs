//! Test support shared by the integration test binaries: a fresh database per test
//! and the backend matrix ([`db`]), the real service on port 0 ([`app`]), one set of
//! HTTP helpers ([`http`]), memcached ([`memcached`]) and log capture ([`logs`]).
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod db;
pub mod http;
pub mod logs;
pub mod memcached;

pub use app::*;
pub use db::*;
pub use http::*;
pub use logs::*;
pub use memcached::*;
