//! Okta's rate-limit buckets as efs-iam names them, and what `/sync/status` shows of
//! each (the [`Governor`](super::governor) keeps the figures).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Okta's rate-limit buckets for the endpoints efs-iam calls. The mapping
/// is a best guess from Okta's last published table and recorded headers; if Okta
/// counts an endpoint elsewhere, the reserve rule still holds because `Remaining` comes
/// from Okta either way.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// `GET`/`POST /api/v1/users` (list, search, create).
    UsersCreateList,
    /// `GET /api/v1/users/{idOrLogin}`.
    UserGet,
    /// `POST`/`PUT`/`DELETE /api/v1/users/{id}` and `/api/v1/users/{id}/lifecycle/*`.
    UserWrite,
    /// `/api/v1/groups` and `/api/v1/groups/{id}/users*` (members).
    Groups,
    /// `/api/v1/groups/{id}` only.
    GroupById,
    /// `POST /oauth2/v1/token`.
    OAuthToken,
    /// Any other `/api/v1` endpoint (e.g. `GET /api/v1/users/{id}/groups`).
    OtherApi,
}

impl Bucket {
    pub const ALL: [Bucket; 7] = [
        Self::UsersCreateList,
        Self::UserGet,
        Self::UserWrite,
        Self::Groups,
        Self::GroupById,
        Self::OAuthToken,
        Self::OtherApi,
    ];

    /// The name in the API and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersCreateList => "users_create_list",
            Self::UserGet => "user_get",
            Self::UserWrite => "user_write",
            Self::Groups => "groups",
            Self::GroupById => "group_by_id",
            Self::OAuthToken => "o_auth_token",
            Self::OtherApi => "other_api",
        }
    }
}

/// Per-bucket state for `/sync/status` (shown there as `BucketBody`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = BucketBody)]
pub struct BucketStatus {
    /// Okta's rate-limit bucket.
    pub bucket: Bucket,
    /// `X-Rate-Limit-Limit` last seen.
    pub limit: Option<u32>,
    /// Org-wide requests left in the window (Okta's figure minus requests sent since).
    pub remaining: Option<u32>,
    /// When the current window resets (from `X-Rate-Limit-Reset`).
    pub reset_at: Option<DateTime<Utc>>,
    /// Requests this instance may send per window (`share × limit`).
    pub allowance: Option<u32>,
    /// Requests this instance sent in the current window.
    pub used_in_window: u32,
    pub in_flight: u32,
    /// 429 answers seen (rate limit).
    pub rate_limited: u64,
    /// 429 answers seen (Okta's concurrency limit).
    pub concurrency_limited: u64,
    /// Calls held back to stay within the share.
    pub paced: u64,
}
