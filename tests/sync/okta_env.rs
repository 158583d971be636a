//! The Okta adapter on its own against a fake Okta of its own, with an SQLite error
//! log: the set-up `okta_adapter.rs` and `dpop.rs` share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::TestDb;
use efs_iam::okta::{NewUserProfile, OktaAuth, OktaClient, OktaClientConfig, PrivateKeyJwt};
use efs_iam::storage::{ErrorLogEntry, ErrorLogQuery, ErrorLogStore};
use fake_okta::{FakeOkta, FakeOktaConfig, RecordedRequest, UserStatus};
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
