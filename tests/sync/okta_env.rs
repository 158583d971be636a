//! The Okta adapter on its own against a fake Okta of its own, with an SQLite error
//! log: the set-up `okta_adapter.rs` and `dpop.rs` share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::TestDb;
use efs_iam::okta::{
    Bucket, BucketStatus, NewUserProfile, OktaAuth, OktaClient, OktaClientConfig, OktaError,
    OktaUser, PrivateKeyJwt,
};
use efs_iam::storage::{ErrorLogEntry, ErrorLogQuery, ErrorLogStore};
use fake_okta::{FakeOkta, FakeOktaConfig, Fault, FaultKind, RecordedRequest, UserStatus};
use reqwest::Url;
use secrecy::SecretString;

pub(crate) async fn fake() -> FakeOkta {
    FakeOkta::start(FakeOktaConfig::default()).await
}

/// A client config for the fake with test-sized waits.
pub(crate) fn config(fake: &FakeOkta, auth: OktaAuth) -> OktaClientConfig {
    let mut c = OktaClientConfig::new(Url::parse(&fake.base_url()).unwrap(), auth);
    c.timeout = Duration::from_secs(5);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.rate_limit_jitter = Duration::from_millis(200);
    c
}

pub(crate) fn ssws(token: &str) -> OktaAuth {
    OktaAuth::ApiToken(SecretString::from(token.to_owned()))
}

pub(crate) fn oauth() -> OktaAuth {
    OktaAuth::PrivateKeyJwt(
        PrivateKeyJwt::from_pem(
            FakeOkta::TEST_CLIENT_ID,
            FakeOkta::test_client_private_key_pem(),
            Some("efs-iam-test".into()),
            vec!["okta.users.manage".into(), "okta.groups.manage".into()],
        )
        .unwrap(),
    )
}

pub(crate) struct Env {
    pub fake: FakeOkta,
    pub db: TestDb,
    pub okta: OktaClient,
}

pub(crate) async fn env_with(
    fake: FakeOkta,
    auth: OktaAuth,
    tweak: impl FnOnce(&mut OktaClientConfig),
) -> Env {
    let db = TestDb::sqlite().await;
    let mut c = config(&fake, auth);
    tweak(&mut c);
    let okta = OktaClient::new(c, Some(db.store.clone())).expect("client builds");
    Env { fake, db, okta }
}

pub(crate) async fn env() -> Env {
    env_with(fake().await, ssws("test-token"), |_| {}).await
}

impl Env {
    pub async fn errors(&self) -> Vec<ErrorLogEntry> {
        self.db
            .store
            .query_error_log(&ErrorLogQuery {
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("error log readable")
    }

    /// Asserts the error log holds `expected` as (status, Okta error code, message),
    /// newest first.
    pub async fn assert_logged(&self, expected: &[(i16, &str, &str)]) {
        let rows = self.errors().await;
        let logged: Vec<(i16, &str, &str)> = rows
            .iter()
            .map(|r| {
                let message = r.message.as_deref().expect("every Okta failure has one");
                (r.status_code, r.error_code.as_str(), message)
            })
            .collect();
        assert_eq!(logged, expected);
    }

    /// What the adapter's status says of `bucket`, which it must have used.
    pub fn bucket(&self, bucket: Bucket) -> BucketStatus {
        self.okta
            .status()
            .buckets
            .into_iter()
            .find(|b| b.bucket == bucket)
            .expect("the bucket was used")
    }

    /// `n` reads of user `id` at once, each in its own task; their answers.
    pub async fn read_user_concurrently(
        &self,
        id: &str,
        n: usize,
    ) -> Vec<Result<Option<OktaUser>, OktaError>> {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let (okta, id) = (self.okta.clone(), id.to_owned());
                tokio::spawn(async move { okta.get_user(&id).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(n);
        for call in calls {
            answers.push(call.await.expect("the read's task"));
        }
        answers
    }

    /// The next GET under `/api/v1/users/` (a user read, by id or login) meets `fault`
    /// at the fake.
    pub fn fail_next_user_read(&self, fault: FaultKind) {
        self.fake.inject(Fault::new("GET", "/api/v1/users/", fault));
    }

    pub fn seed_user(&self, login: &str) -> String {
        self.fake
            .create_user(login, login, "Ada", "Lovelace", UserStatus::Active)
    }
}

pub(crate) fn profile(login: &str) -> NewUserProfile {
    NewUserProfile::new(login, login, "Grace", "Hopper")
}

pub(crate) fn retries(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests
        .iter()
        .filter(|r| r.header("x-okta-retry-count").is_some())
        .collect()
}

pub(crate) fn epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap()
}
