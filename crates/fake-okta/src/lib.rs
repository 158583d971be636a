//! A fake Okta org for tests: a real HTTP server that speaks the subset of Okta's
//! Management API, OAuth token endpoint and OIDC metadata that efs-iam uses, with Okta's
//! semantics (ids, statuses, lifecycle rules, error bodies, `Link` pagination, rate-limit
//! headers) and in-memory state.
//!
//! Why a fake rather than a mock: the Okta adapter must be tested against the behaviour
//! that bites in production (429s with `X-Rate-Limit-Reset`, dropped connections, cursor
//! pagination, the two-step DELETE, case-insensitive logins), and those only show up when
//! a real HTTP client talks to something stateful. Every behaviour here is built from
//! Okta's documentation, its OpenAPI spec (vendored in `tests/okta-spec/`) and its error
//! catalog; what had to
//! be assumed is listed in `ASSUMPTIONS.md` next to this file.
//!
//! Tests drive it through [`FakeOkta`]: start it, point the code under test at
//! [`FakeOkta::base_url`], then seed state, inject faults or change limits at runtime and
//! assert on the recorded traffic.
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! use fake_okta::{Fault, FaultKind, FakeOkta, FakeOktaConfig, UserStatus};
//!
//! let okta = FakeOkta::start(FakeOktaConfig {
//!     rate_limit: 5,
//!     window: Duration::from_secs(2),
//!     ..FakeOktaConfig::default() // SSWS token "test-token"
//! })
//! .await;
//! let group = okta.create_group("EFS panel");
//! let user = okta.create_user("a@example.com", "a@example.com", "A", "B", UserStatus::Active);
//! okta.inject(Fault::new("PUT", "/api/v1/groups/", FaultKind::ServiceUnavailable));
//! // ... run the adapter against okta.base_url(), then:
//! assert_eq!(okta.group_members(&group), vec![user]);
//! assert_eq!(okta.request_count("PUT", "/api/v1/groups/{groupId}/users/{userId}"), 2);
//! # }
//! ```
//!
//! The standalone `examples/fake_okta.rs` serves one on a fixed port, and
//! `scripts/check-fake-okta-against-spec.sh` checks its answers against Okta's OpenAPI
//! spec with Prism.

mod api;
mod dpop;
mod errors;
pub mod events;
mod ids;
mod oauth;
mod pipeline;
mod query;
mod store;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

pub use dpop::{DpopProofSeen, IAT_WINDOW as DPOP_IAT_WINDOW};
pub use events::{Delivery, EventHook};
pub use pipeline::RateLimitBucket;
pub use store::{GroupType, UserStatus};

/// How the fake behaves. Everything that tests may want to change mid-test can also be
/// changed through the [`FakeOkta`] handle.
#[derive(Debug, Clone)]
pub struct FakeOktaConfig {
    /// Accepted as `Authorization: SSWS <token>`. `None` disables API-token auth, which
    /// is how a test proves the client really uses OAuth.
    pub api_token: Option<String>,
    /// Extra tokens accepted as `Authorization: Bearer <token>` with every scope, for tests
    /// that want OAuth-style headers without running the client-credentials flow.
    pub access_tokens: Vec<String>,
    /// The registered OAuth service app: `(client_id, RSA public key PEM)`, verified
    /// against `private_key_jwt` client assertions at `/oauth2/v1/token`. Defaults to
    /// [`FakeOkta::TEST_CLIENT_ID`] with the bundled test client key.
    pub oauth_client: Option<(String, String)>,
    /// Scopes the service app has been granted; requesting anything else is `invalid_scope`.
    pub oauth_scopes: Vec<String>,
    /// Lifetime of issued access tokens. Okta fixes it at one hour; shorten it to test
    /// token refresh.
    pub access_token_lifetime: Duration,
    /// The service app requires DPoP ("Require Demonstrating Proof of Possession",
    /// Okta's default for API Services apps since 2024): see `dpop.rs`.
    pub require_dpop: bool,
    /// Requests allowed per bucket per window (Okta's per-minute limits, scaled to taste).
    pub rate_limit: u32,
    /// Per-bucket overrides of `rate_limit`, since Okta's buckets have different ceilings.
    pub bucket_limits: HashMap<RateLimitBucket, u32>,
    /// Length of a rate-limit window. Okta's is 60 s; tests shrink it to see recovery.
    pub window: Duration,
    /// Requests allowed in flight at once before Okta's concurrency 429 kicks in.
    pub concurrency_limit: usize,
    /// Added to every call, so timeouts and concurrency can be exercised.
    pub latency: Duration,
    /// Real Okta answers a deactivation with 200 `{}` or with 204 and no body; clients must
    /// accept both, so tests need to be able to pick.
    pub deactivate_returns_204: bool,
    /// Status a user without a password reaches on activation. Okta says `PROVISIONED` or
    /// `ACTIVE` depending on the org's enrollment policy.
    pub passwordless_activation_status: UserStatus,
    /// Okta's default user schema requires logins to look like email addresses.
    pub require_email_login: bool,
    /// Custom user profile properties the org's schema has, beyond Okta's default
    /// profile; a property in neither is refused as Okta does ("Property name '…' is not
    /// defined in profile"). See also [`FakeOkta::define_profile_attribute`].
    pub custom_profile_attributes: Vec<String>,
    /// Whether the org has Okta's built-in `Everyone` group, which every user belongs to
    /// and which shows up in a user's group list.
    pub everyone_group: bool,
    /// Faults queued before the first request, e.g. for a standalone process.
    pub faults: Vec<Fault>,
    /// How many recent requests [`FakeOkta::requests`] keeps.
    pub max_recorded_requests: usize,
    /// The org URL the fake claims to be (issuer, links, `aud` of client assertions).
    /// Defaults to `http://<bound address>`; set it when the fake sits behind a proxy.
    pub public_base_url: Option<String>,
}

impl Default for FakeOktaConfig {
    fn default() -> Self {
        Self {
            api_token: Some("test-token".to_owned()),
            access_tokens: Vec::new(),
            oauth_client: Some((
                FakeOkta::TEST_CLIENT_ID.to_owned(),
                FakeOkta::test_client_public_key_pem().to_owned(),
            )),
            oauth_scopes: [
                "okta.users.read",
                "okta.users.manage",
                "okta.groups.read",
                "okta.groups.manage",
                "okta.roles.read",
            ]
            .map(str::to_owned)
            .to_vec(),
            access_token_lifetime: Duration::from_secs(3600),
            require_dpop: false,
            rate_limit: 10_000,
            bucket_limits: HashMap::new(),
            window: Duration::from_secs(60),
            concurrency_limit: 1_000,
            latency: Duration::ZERO,
            deactivate_returns_204: false,
            passwordless_activation_status: UserStatus::Provisioned,
            require_email_login: true,
            custom_profile_attributes: Vec::new(),
            everyone_group: true,
            faults: Vec::new(),
            max_recorded_requests: 1_000,
            public_base_url: None,
        }
    }
}

/// A misbehaviour to serve instead of (or before) the normal answer, for the next
/// `times` requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `None` matches any method.
    pub method: Option<String>,
    /// Matched against the request path (without the query string).
    pub path_prefix: String,
    pub kind: FaultKind,
    /// How many matching requests this fault applies to.
    pub times: usize,
}

impl Fault {
    /// A fault for the next request with this method whose path starts with `path_prefix`.
    pub fn new(method: &str, path_prefix: &str, kind: FaultKind) -> Self {
        Self {
            method: Some(method.to_ascii_uppercase()),
            path_prefix: path_prefix.to_owned(),
            kind,
            times: 1,
        }
    }

    /// A fault for the next request of any method under `path_prefix`.
    pub fn any_method(path_prefix: &str, kind: FaultKind) -> Self {
        Self {
            method: None,
            path_prefix: path_prefix.to_owned(),
            kind,
            times: 1,
        }
    }

    /// Apply to the next `n` matching requests instead of one.
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }
}

/// What an injected fault does.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// 500 `E0000009`, the error Okta's SDKs do not retry.
    InternalServerError,
    /// 503 `E0000010` (read-only mode), which some SDKs treat as retryable.
    ServiceUnavailable,
    /// 429 `E0000047` with `X-Rate-Limit-Remaining: 0` and a reset `reset_after` from now,
    /// without having to exhaust a bucket.
    RateLimited { reset_after: Duration },
    /// Okta's concurrency 429: `X-Rate-Limit-Limit: 0`, `X-Rate-Limit-Remaining: 0`.
    ConcurrencyLimited,
    /// Wait this long, then answer normally (a client with a shorter timeout gives up).
    Hang(Duration),
    /// Close the connection without sending a byte of response.
    DropConnection,
    /// Carry the request out (Okta does the work), then close the connection without
    /// answering: what a client sees when its request times out after Okta acted.
    AnswerLost,
    /// Any other answer: this status and this body (an Okta error object, typically).
    Response { status: u16, body: Value },
    /// The normal answer, with rate-limit headers that lie: this `Remaining` and this
    /// `Reset` (epoch seconds, any value, `u64::MAX` included), as a broken proxy or a
    /// hostile peer might send.
    LyingRateHeaders { remaining: u32, reset: u64 },
    /// A listing page of made-up users whose `Link` always names a new next page, as an
    /// Okta (or a proxy) that never ends a listing would: inject it with a large
    /// `times` on a listing route.
    EndlessPages,
}

/// One request as the fake saw it, for assertions about what the client sent.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The `X-Okta-Request-Id` the fake answered with.
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The route template, e.g. `/api/v1/users/{id}`, as used by [`FakeOkta::request_count`].
    pub route: String,
    /// The scheme of `Authorization` (`SSWS`, `Bearer`, `DPoP`), never the credential.
    pub auth_scheme: Option<String>,
    /// All request headers except `Authorization` (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The status answered; `None` if the request was dropped or is still in flight.
    pub status: Option<u16>,
    pub received_at: SystemTime,
}

impl RecordedRequest {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Handle on a running fake. Cheap to clone; all clones control the same server.
#[derive(Clone)]
pub struct FakeOkta {
    shared: Arc<Shared>,
}

/// Settings tests can change while the server runs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub latency: Duration,
    pub rate_limit: u32,
    pub bucket_limits: HashMap<RateLimitBucket, u32>,
    pub window: Duration,
    pub concurrency_limit: usize,
    pub deactivate_returns_204: bool,
    pub passwordless_activation_status: UserStatus,
    pub require_email_login: bool,
    pub custom_profile_attributes: BTreeSet<String>,
    pub api_token: Option<String>,
    pub require_dpop: bool,
}

/// Everything the server and the handles share.
pub(crate) struct Shared {
    pub base_url: String,
    pub addr: SocketAddr,
    pub store: Mutex<store::Store>,
    pub settings: Mutex<Settings>,
    pub limiter: Mutex<pipeline::RateLimiter>,
    pub in_flight: Arc<AtomicUsize>,
    pub faults: Mutex<Vec<Fault>>,
    pub log: Mutex<pipeline::RequestLog>,
    pub oauth: oauth::OAuth,
    pub dpop: dpop::Dpop,
    /// Salt that makes pagination cursors opaque and tamper-evident.
    pub cursor_salt: String,
    pub shutdown: watch::Sender<bool>,
    pub events: Mutex<events::Events>,
}

impl Shared {
    pub(crate) fn settings(&self) -> Settings {
        self.settings.lock().unwrap().clone()
    }
}

/// Lets the middleware close the connection a request arrived on, to simulate a drop.
#[derive(Clone)]
pub(crate) struct ConnectionKiller(Arc<Notify>);

impl ConnectionKiller {
    pub(crate) fn kill(&self) {
        self.0.notify_one();
    }
}

impl FakeOkta {
    /// Client id of the bundled test service app (registered by default).
    pub const TEST_CLIENT_ID: &'static str = "0oa1fakeoktaTESTapp7";
    /// `kid` of the key the fake signs id_tokens and access tokens with.
    pub const SIGNING_KEY_ID: &'static str = oauth::KID_1;
    /// `kid` of the second key in the JWKS, present so clients must select keys by `kid`.
    pub const SECOND_SIGNING_KEY_ID: &'static str = oauth::KID_2;
    /// `aud` of minted id_tokens when the claims given don't set one.
    pub const DEFAULT_ID_TOKEN_AUDIENCE: &'static str = "0oa1fakeoktaWEBapp01";

    /// Binds 127.0.0.1 on a free port and serves in the background for as long as the
    /// tokio runtime lives (or until [`FakeOkta::shutdown`]); one fake per test keeps
    /// tests independent.
    pub async fn start(config: FakeOktaConfig) -> FakeOkta {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the fake Okta to 127.0.0.1:0");
        let shared = build_shared(&listener, config);
        tokio::spawn(run(listener, shared.clone()));
        FakeOkta { shared }
    }

    /// Serves on an existing listener until `shutdown` completes: for a standalone fake
    /// process (see `examples/fake_okta.rs`) where no handle is needed.
    pub async fn serve(
        listener: TcpListener,
        config: FakeOktaConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shared = build_shared(&listener, config);
        let trigger = shared.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = trigger.send(true);
        });
        run(listener, shared).await
    }

    /// The org URL, e.g. `http://127.0.0.1:41234` (no trailing slash), which is also the
    /// OIDC issuer.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Stops accepting connections and lets in-flight requests finish.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    // ---- faults, latency, limits -------------------------------------------------

    /// Queues a fault; faults are consumed in the order injected.
    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.faults.lock().unwrap().push(fault);
        }
    }

    /// Forgets all queued faults.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// How many fault applications are still queued, to assert that a client retried.
    pub fn pending_faults(&self) -> usize {
        self.shared
            .faults
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.times)
            .sum()
    }

    /// Latency added to every subsequent call.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.settings.lock().unwrap().latency = latency;
    }

    /// Requests per window for every bucket without an override; applies to the current
    /// window immediately.
    pub fn set_rate_limit(&self, per_window: u32) {
        self.shared.settings.lock().unwrap().rate_limit = per_window;
    }

    /// Requests per window for one bucket.
    pub fn set_bucket_rate_limit(&self, bucket: RateLimitBucket, per_window: u32) {
        self.shared
            .settings
            .lock()
            .unwrap()
            .bucket_limits
            .insert(bucket, per_window);
    }

    /// Length of future rate-limit windows.
    pub fn set_rate_limit_window(&self, window: Duration) {
        self.shared.settings.lock().unwrap().window = window;
    }

    /// Starts every bucket afresh, as if a window had just ended.
    pub fn reset_rate_limits(&self) {
        self.shared.limiter.lock().unwrap().reset();
    }

    /// Maximum requests in flight before the concurrency 429.
    pub fn set_concurrency_limit(&self, limit: usize) {
        self.shared.settings.lock().unwrap().concurrency_limit = limit;
    }

    /// Switches deactivation answers between 200 `{}` and 204 (both seen from real Okta).
    pub fn set_deactivate_returns_204(&self, yes: bool) {
        self.shared.settings.lock().unwrap().deactivate_returns_204 = yes;
    }

    /// Changes (or with `None` disables) the accepted SSWS API token, e.g. to simulate a
    /// revoked token.
    pub fn set_api_token(&self, token: Option<&str>) {
        self.shared.settings.lock().unwrap().api_token = token.map(str::to_owned);
    }

    /// Adds a custom property to the org's user profile schema, as an admin does in the
    /// Profile Editor: users may have it from now on.
    pub fn define_profile_attribute(&self, name: &str) {
        self.shared
            .settings
            .lock()
            .unwrap()
            .custom_profile_attributes
            .insert(name.to_owned());
    }

    // ---- OAuth / OIDC --------------------------------------------------------------

    /// Invalidates every access token issued so far, as a revocation would.
    pub fn revoke_access_tokens(&self) {
        self.shared.oauth.revoke_all();
    }

    /// Issues an access token with these scopes without the client-credentials flow, for
    /// tests about the Management API rather than about token acquisition.
    pub fn issue_access_token(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.shared
            .oauth
            .issue_access_token(&self.shared.base_url, Self::TEST_CLIENT_ID, &scopes, None)
            .0
    }

    /// Turns the service app's "Require DPoP" on or off.
    pub fn set_require_dpop(&self, yes: bool) {
        self.shared.settings.lock().unwrap().require_dpop = yes;
    }

    /// Okta renews its DPoP nonce; the previous one is still accepted.
    pub fn rotate_dpop_nonce(&self) {
        self.shared.dpop.rotate_nonce();
    }

    /// Okta renews its DPoP nonce and no longer accepts the previous one.
    pub fn expire_dpop_nonce(&self) {
        self.shared.dpop.expire_nonce();
    }

    /// Every access token the fake issued and every client assertion it received: what
    /// must never show up in a client's logs.
    pub fn oauth_secrets_seen(&self) -> Vec<String> {
        self.shared.oauth.secrets_seen()
    }

    /// Every DPoP proof the fake checked, in order, with its outcome.
    pub fn dpop_proofs(&self) -> Vec<DpopProofSeen> {
        self.shared.dpop.seen()
    }

    /// Mints an RS256 id_token signed with the fake's key (`kid` [`Self::SIGNING_KEY_ID`])
    /// so login flows can be verified end to end against the served JWKS. `claims`
    /// (e.g. `sub`, `email`, `aud`, `nonce`, `exp`) override the defaults: `iss` = base
    /// URL, `aud` = [`Self::DEFAULT_ID_TOKEN_AUDIENCE`], `iat` = now, `exp` = now + 1 h,
    /// `ver`, `jti`, `amr`, `idp`, `auth_time`.
    pub fn mint_id_token(&self, claims: Value) -> String {
        self.shared
            .oauth
            .mint_id_token(&self.shared.base_url, claims, oauth::KID_1)
    }

    /// Like [`Self::mint_id_token`], signed with the second JWKS key, to check that a
    /// verifier selects keys by `kid` rather than taking the first one.
    pub fn mint_id_token_with_second_key(&self, claims: Value) -> String {
        self.shared
            .oauth
            .mint_id_token(&self.shared.base_url, claims, oauth::KID_2)
    }

    /// A valid `private_key_jwt` client assertion for the bundled test client against
    /// this fake's token endpoint (exp now + 5 min, fresh `jti`).
    pub fn test_client_assertion(&self) -> String {
        oauth::sign_client_assertion(
            Self::TEST_CLIENT_ID,
            &format!("{}/oauth2/v1/token", self.shared.base_url),
            Self::test_client_private_key_pem(),
            300,
        )
    }

    /// Signs arbitrary claims (RS256) with the test client's private key, to build
    /// deliberately wrong client assertions (bad `aud`, expired, far-future `exp`...).
    pub fn sign_with_test_client_key(claims: &Value) -> String {
        let key = oauth::encoding_key_from_pem(Self::test_client_private_key_pem())
            .expect("bundled test key");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            claims,
            &key,
        )
        .expect("sign")
    }

    /// The fake's id_token signing key (test-only, committed under `keys/`), for tests
    /// that need to forge a token the fake would have issued.
    pub fn test_signing_key_pem() -> &'static str {
        oauth::SIGNING_KEY_1_PEM
    }

    /// Private key of the bundled test service app, to sign client assertions the way
    /// the real adapter will.
    pub fn test_client_private_key_pem() -> &'static str {
        oauth::CLIENT_PRIVATE_PEM
    }

    /// Public key registered for [`Self::TEST_CLIENT_ID`].
    pub fn test_client_public_key_pem() -> &'static str {
        oauth::CLIENT_PUBLIC_PEM
    }

    // ---- introspection -------------------------------------------------------------

    /// Requests received for a method and route template (e.g. `("GET",
    /// "/api/v1/users/{id}")`, `("POST", "/api/v1/users/{id}/lifecycle/deactivate")`),
    /// including those answered with faults or 429s, so retries can be counted.
    pub fn request_count(&self, method: &str, route: &str) -> usize {
        self.shared.log.lock().unwrap().count(method, route)
    }

    /// The most recent requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().unwrap().requests()
    }

    /// Forgets recorded requests and counts.
    pub fn clear_requests(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    // ---- state ---------------------------------------------------------------------

    /// Creates an `OKTA_GROUP` directly (no HTTP, no rate limit) and returns its `00g` id.
    /// Panics if the name is taken, since that is a broken test setup.
    pub fn create_group(&self, name: &str) -> String {
        self.create_group_of_type(name, GroupType::OktaGroup)
    }

    /// Creates a group of any type, e.g. an `APP_GROUP` to check that membership changes
    /// are refused.
    pub fn create_group_of_type(&self, name: &str, group_type: GroupType) -> String {
        self.shared
            .store
            .lock()
            .unwrap()
            .create_group(name, None, group_type)
            .unwrap_or_else(|e| panic!("fake Okta create_group({name}): {e:?}"))
    }

    /// Creates a user directly in the given status and returns its `00u` id. Panics if
    /// the login is taken.
    pub fn create_user(
        &self,
        login: &str,
        email: &str,
        first_name: &str,
        last_name: &str,
        status: UserStatus,
    ) -> String {
        self.shared
            .store
            .lock()
            .unwrap()
            .seed_user(login, email, first_name, last_name, status)
            .unwrap_or_else(|e| panic!("fake Okta create_user({login}): {e:?}"))
    }

    /// Forces a user's status (e.g. `LOCKED_OUT`, which no API call here produces), as
    /// an admin does in the Admin Console: with an event hook registered, the matching
    /// lifecycle event is delivered (deactivate, suspend, unsuspend, reactivate,
    /// activate). Returns false if there is no such user.
    pub fn set_user_status(&self, id: &str, status: UserStatus) -> bool {
        let mut store = self.shared.store.lock().unwrap();
        let Some(before) = store.find_user(id).map(|u| u.status) else {
            return false;
        };
        store.force_status(id, status);
        let target = store.find_user(id).map(|u| self.user_target(u));
        drop(store);
        let event_type = match (before, status) {
            (a, b) if a == b => None,
            (_, UserStatus::Deprovisioned) => Some("user.lifecycle.deactivate"),
            (_, UserStatus::Suspended) => Some("user.lifecycle.suspend"),
            (UserStatus::Suspended, UserStatus::Active) => Some("user.lifecycle.unsuspend"),
            (UserStatus::Deprovisioned, _) => Some("user.lifecycle.reactivate"),
            (_, UserStatus::Active) => Some("user.lifecycle.activate"),
            _ => None,
        };
        if let (Some(event_type), Some(target)) = (event_type, target) {
            self.emit(vec![events::event(event_type, vec![target])]);
        }
        true
    }

    /// Deletes a deactivated user for good, as the Admin Console does (event
    /// `user.lifecycle.delete.initiated`). Returns false if there is no such user.
    pub fn delete_user(&self, id: &str) -> bool {
        let mut store = self.shared.store.lock().unwrap();
        let Some(seq) = store.find_user_seq(id) else {
            return false;
        };
        let target = store.user(seq).map(|u| self.user_target(u));
        store.delete_user(seq);
        drop(store);
        if let Some(target) = target {
            self.emit(vec![events::event(
                "user.lifecycle.delete.initiated",
                vec![target],
            )]);
        }
        true
    }

    /// Removes a member as the Admin Console does (event `group.user_membership.remove`).
    /// Returns false if either id is unknown.
    pub fn remove_group_member(&self, group_id: &str, user_id: &str) -> bool {
        let mut store = self.shared.store.lock().unwrap();
        let (Some(group), Some(user)) = (
            store.group(group_id).map(|g| self.group_target(g)),
            store.user_by_id(user_id).map(|u| self.user_target(u)),
        ) else {
            return false;
        };
        store.remove_member(group_id, user_id);
        drop(store);
        self.emit(vec![events::event(
            "group.user_membership.remove",
            vec![user, group],
        )]);
        true
    }

    /// Changes one profile attribute as the Admin Console does (event
    /// `user.account.update_profile`). Returns false if there is no such user.
    pub fn update_user_profile(&self, id: &str, attribute: &str, value: Value) -> bool {
        let mut store = self.shared.store.lock().unwrap();
        let Some(seq) = store.find_user_seq(id) else {
            return false;
        };
        let mut profile = store
            .user(seq)
            .map(|u| u.profile.clone())
            .unwrap_or_default();
        profile.insert(attribute.to_owned(), value);
        store.update_profile(seq, profile);
        let target = store.user(seq).map(|u| self.user_target(u));
        drop(store);
        if let Some(target) = target {
            self.emit(vec![events::event(
                "user.account.update_profile",
                vec![target],
            )]);
        }
        true
    }

    // ---- event hooks -----------------------------------------------------------------

    /// Registers an event hook; Admin Console changes are delivered to it from now on.
    pub fn set_event_hook(&self, hook: EventHook) {
        self.shared
            .events
            .lock()
            .unwrap()
            .register(hook, &self.shared.base_url);
    }

    /// Okta's one-time verification: a `GET` with `X-Okta-Verification-Challenge`; the
    /// endpoint must echo the challenge as `{"verification": …}`. `Err` says why not.
    pub async fn verify_event_hook(&self) -> Result<(), String> {
        let hook = self
            .shared
            .events
            .lock()
            .unwrap()
            .hook()
            .cloned()
            .ok_or("no event hook registered")?;
        let challenge = ids::random_alnum(40);
        let res = reqwest::Client::new()
            .get(&hook.url)
            .header(hook.auth_header.as_str(), hook.secret.as_str())
            .header("X-Okta-Verification-Challenge", challenge.as_str())
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = res.status().as_u16();
        let body: Value = res
            .json()
            .await
            .map_err(|e| format!("{status}, not JSON: {e}"))?;
        if status == 200 && body["verification"] == challenge.as_str() {
            Ok(())
        } else {
            Err(format!("answered {status} {body}"))
        }
    }

    /// Delivers these events (e.g. built with [`events::event`]) in one request, as
    /// they are: to test duplicates and reordering.
    pub fn deliver_events(&self, events: Vec<Value>) {
        self.shared.events.lock().unwrap().deliver(events);
    }

    /// The deliveries made so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared
            .events
            .lock()
            .unwrap()
            .deliveries
            .lock()
            .unwrap()
            .clone()
    }

    /// Waits until every queued delivery has been made (or `timeout` passes).
    pub async fn wait_for_deliveries(&self, timeout: Duration) -> bool {
        let pending = self.shared.events.lock().unwrap().pending.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        while pending.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn emit(&self, events: Vec<Value>) {
        self.shared.events.lock().unwrap().deliver(events);
    }

    fn user_target(&self, u: &store::User) -> Value {
        let name = format!(
            "{} {}",
            u.profile
                .get("firstName")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            u.profile
                .get("lastName")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        events::user_target(&u.id, u.login(), name.trim())
    }

    fn group_target(&self, g: &store::Group) -> Value {
        let name = g
            .profile
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        events::group_target(&g.id, name)
    }

    /// The user (by id or login) as `GET /api/v1/users/{id}` would render it.
    pub fn user(&self, id_or_login: &str) -> Option<Value> {
        let store = self.shared.store.lock().unwrap();
        store
            .find_user(id_or_login)
            .map(|u| store.render_user(u, store::Render::Full))
    }

    /// Assigns a standard admin role (`SUPER_ADMIN`, `ORG_ADMIN`, …) to a user, as an
    /// Okta admin does in the Admin Console. Returns false for an unknown user.
    pub fn grant_admin_role(&self, user_id: &str, role_type: &str) -> bool {
        self.shared
            .store
            .lock()
            .unwrap()
            .grant_admin_role(user_id, role_type)
    }

    /// The group as `GET /api/v1/groups/{id}` would render it.
    pub fn group(&self, group_id: &str) -> Option<Value> {
        let store = self.shared.store.lock().unwrap();
        store.group(group_id).map(|g| store.render_group(g, false))
    }

    /// Ids of the group's members in membership order (empty for an unknown group).
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        self.shared.store.lock().unwrap().member_ids(group_id)
    }

    /// Adds a member directly (any group type), as the Admin Console does (event
    /// `group.user_membership.add`). Returns false if either id is unknown.
    pub fn add_group_member(&self, group_id: &str, user_id: &str) -> bool {
        let mut store = self.shared.store.lock().unwrap();
        if !store.force_add_member(group_id, user_id) {
            return false;
        }
        let group = store.group(group_id).map(|g| self.group_target(g));
        let user = store.user_by_id(user_id).map(|u| self.user_target(u));
        drop(store);
        if let (Some(user), Some(group)) = (user, group) {
            self.emit(vec![events::event(
                "group.user_membership.add",
                vec![user, group],
            )]);
        }
        true
    }

    /// Ids of all users, in creation order, including `DEPROVISIONED` ones.
    pub fn user_ids(&self) -> Vec<String> {
        self.shared.store.lock().unwrap().user_ids()
    }
}

fn build_shared(listener: &TcpListener, config: FakeOktaConfig) -> Arc<Shared> {
    let mut addr = listener.local_addr().expect("listener address");
    let base_url = match &config.public_base_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let ip = if addr.ip().is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                addr.ip()
            };
            addr.set_ip(ip);
            format!("http://{addr}")
        }
    };
    let settings = Settings {
        latency: config.latency,
        rate_limit: config.rate_limit,
        bucket_limits: config.bucket_limits.clone(),
        window: config.window,
        concurrency_limit: config.concurrency_limit,
        deactivate_returns_204: config.deactivate_returns_204,
        passwordless_activation_status: config.passwordless_activation_status,
        require_email_login: config.require_email_login,
        custom_profile_attributes: config.custom_profile_attributes.iter().cloned().collect(),
        api_token: config.api_token.clone(),
        require_dpop: config.require_dpop,
    };
    let (shutdown, _) = watch::channel(false);
    Arc::new(Shared {
        store: Mutex::new(store::Store::new(&base_url, config.everyone_group)),
        oauth: oauth::OAuth::new(&config),
        dpop: dpop::Dpop::new(),
        settings: Mutex::new(settings),
        limiter: Mutex::new(pipeline::RateLimiter::default()),
        in_flight: Arc::new(AtomicUsize::new(0)),
        faults: Mutex::new(config.faults.into_iter().filter(|f| f.times > 0).collect()),
        log: Mutex::new(pipeline::RequestLog::new(config.max_recorded_requests)),
        cursor_salt: ids::random_alnum(8),
        base_url,
        addr,
        shutdown,
        events: Mutex::new(events::Events::default()),
    })
}

/// Okta serves `/api/v1/users/` like `/api/v1/users` (an SDK was recorded sending the
/// former); axum's router does not, so the path is normalised before routing.
fn strip_trailing_slash<B>(req: &mut hyper::Request<B>) {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let rebuilt = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = rebuilt.parse() {
            *req.uri_mut() = uri;
        }
    }
}

/// The accept loop. A hand-rolled loop (rather than `axum::serve`) because simulating a
/// dropped connection needs control over each connection's lifetime.
async fn run(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    let router = api::router(shared.clone());
    let mut stop = shared.shutdown.subscribe();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "fake Okta: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut conn_stop = shared.shutdown.subscribe();
        tokio::spawn(async move {
            let killer = ConnectionKiller(Arc::new(Notify::new()));
            let service_killer = killer.clone();
            let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(service_killer.clone());
                strip_trailing_slash(&mut req);
                router.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Dropping the connection future closes the socket with nothing written.
                _ = killer.0.notified() => {}
                _ = conn_stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
