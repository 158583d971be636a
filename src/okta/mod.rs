//! The Okta adapter: efs-iam's only way to talk to Okta's Management API.
//!
//! Read it top to bottom:
//!
//! - [`client`]: [`OktaClient`], the operations the sync needs (users by id or login,
//!   create, partial profile update, deactivate, group membership, member and group
//!   listings), each a call on its route;
//! - `call.rs`: how one call is made: the `Authorization` (`access_token.rs`, from the
//!   credential in [`credentials`]), admission by the rate-limit [`governor`], one HTTP
//!   exchange (`exchange.rs`, Okta's answer headers read by `headers.rs`), what the
//!   answer means ([`error`]), its row in `iam_error_log` (`error_log.rs`) and the retry
//!   loop;
//! - [`models`]: Okta's users and groups; [`settings`]: the environment.
//!
//! Each part keeps its own state (access tokens, the governor's buckets, the error
//! log's open series) behind its own methods; no file reaches into another's state,
//! and no file imports one that imports it back.
//!
//! Design decisions:
//!
//! - **Its own error type.** [`OktaError`] says what the caller can do next (fix data,
//!   change lifecycle step, call an operator, try later) and carries Okta's own details
//!   for the log. HTTP-layer types never leak out, so a change of HTTP client stays
//!   inside this module.
//! - **No trait in front of the client (yet).** Tests drive the real client over real
//!   HTTP against the fake Okta (`crates/fake-okta`), which is a better test double than a mock: rate
//!   limits, dropped connections and pagination only show up on the wire. A trait can
//!   come when there is a second implementation to put behind it.
//! - **Lookups answer `None` only on Okta's "resource not found".** A 404 whose
//!   `errorCode` is not `E0000007` (e.g. `E0000008`, path not found, from a wrong org URL)
//!   is an error: reading it as "no such user" would make a sync create duplicates.
//! - **One org-wide governor per client.** Share one [`OktaClient`] (it is a cheap
//!   `Clone`) across the process; two clients would each think they own the share.
//! - **Listings collect every page.** The largest EFS panels are thousands of members,
//!   small enough to hold, and a complete `Vec` is easier to diff than a stream.

pub mod client;
pub mod credentials;
pub mod dpop;
pub mod error;
pub mod governor;
pub mod models;
pub mod scopes;
pub mod settings;

mod access_token;
mod bucket;
mod call;
mod error_log;
mod exchange;
mod headers;
mod list_bound;
mod org_url;
mod retry_policy;
mod status;

pub use access_token::AuthFailure;
pub use bucket::{Bucket, BucketStatus};
pub use client::{OktaClient, OktaClientConfig};
pub use credentials::{InvalidPrivateKey, OktaAuth, PrivateKeyJwt};
pub use dpop::{DpopKey, DpopMode, InvalidDpopKey};
pub use error::{OktaApiError, OktaConfigError, OktaError};
pub use error_log::CallContext;
pub use exchange::OKTA_OUTCOMES;
pub use governor::in_background;
pub use list_bound::ListBound;
pub use models::{
    Activation, NewUserProfile, OktaGroup, OktaGroupMember, OktaGroupProfile, OktaGroupType,
    OktaMemberLogin, OktaRole, OktaUser, OktaUserProfile, OktaUserStatus, OnMissing, ProfileUpdate,
    Removal,
};
pub use scopes::{MissingScope, ScopeCheck};
pub use settings::{client_from_settings, OktaSettings};
pub use status::OktaStatus;
