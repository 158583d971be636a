//! efs-iam: EFS's Okta integration as a service. See README.md.

pub mod auth;
pub mod config;
pub mod domain;
pub mod http;
pub mod jwks;
pub mod okta;
pub mod startup;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod tokens;
pub mod trust;
