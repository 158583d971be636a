//! efs-iam: EFS's Okta integration as a service. See README.md.

/// `trait_alias!(pub Name: A + B + …)`: a trait that stands for its bounds, implemented
/// for every type that meets them (Rust has no trait aliases yet).
macro_rules! trait_alias {
    ($(#[$doc:meta])* $vis:vis $name:ident: $($bounds:tt)+) => {
        $(#[$doc])*
        $vis trait $name: $($bounds)+ {}
        impl<T: $($bounds)+> $name for T {}
    };
}
pub(crate) use trait_alias;

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
