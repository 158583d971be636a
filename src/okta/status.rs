//! [`OktaStatus`]: what `/sync/status` shows of the adapter.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::access_token::AuthFailure;
use super::bucket::BucketStatus;
use super::dpop::DpopMode;
use super::scopes::ScopeCheck;

/// The adapter's state for `/sync/status`.
#[derive(Debug, Clone, Serialize)]
pub struct OktaStatus {
    pub org_url: String,
    /// `api_token` or `private_key_jwt`.
    pub auth_method: &'static str,
    pub rate_share: f64,
    pub max_concurrency: usize,
    /// Requests in flight now, all buckets.
    pub in_flight: usize,
    /// Buckets efs-iam has used since start, by name.
    pub buckets: Vec<BucketStatus>,
    /// Last time Okta answered a call successfully.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Last time Okta refused the credentials (kept after later successes; compare with
    /// `last_success_at`).
    pub last_auth_failure: Option<AuthFailure>,
    /// Service apps: the DPoP mode (`auto`, `on`, `off`) and whether proofs are sent now.
    pub dpop: Option<(DpopMode, bool)>,
    /// Service apps: the scopes asked for, granted and missing.
    pub scopes: Option<ScopeCheck>,
}
